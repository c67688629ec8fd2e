from ._llm import LLMConfig as LLMConfig, TrainingWorkload as TrainingWorkload
