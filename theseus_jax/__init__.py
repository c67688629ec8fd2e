"""theseus_jax: batched, differentiable design-space exploration of wafer-scale chips for LLMs."""
