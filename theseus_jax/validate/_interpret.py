"""Read a measurement as people write it: metric wording, model names and shapes, hardware,
parallelism fields, batch and software era -> one explicit interpretation.

Every rule is generic (it reads the case's words and numbers, never its id or source name)
and every rule that fires appends an :class:`Assumption` with its rule name, so
``theseus validate --explain`` can print exactly what was assumed. A case that cannot be
read raises :class:`CaseError`, which the caller reports as an unsupported row (malformed
cases never stop a run).

Rules, in the order they are applied:

* ``count``: ``hardware.count`` must be one positive whole number ("8", 8.0 and "2x8" are
  read; a range such as "96 -> 4608", a list, null or 0 is malformed). A missing count is
  the product of the stated parallel degrees.
* ``model-name`` / ``model-alias`` / ``model-shape``: a known name (any spelling; the
  parenthetical and suffixes such as "-Instruct" dropped; workload files list aliases of the
  same architecture); shape fields in the case override it; a model with only shape fields
  takes stated defaults (MHA, FFN 4h GELU, vocab 51200, tied embeddings, GPT style).
* ``hardware-alias``: accelerator name to a system config (derived parts such as H800 are
  configs with a ``base``).
* ``parallelism``: tp, pp, dp, cp, ep, vp / interleaving, micro-batch, sequence parallelism,
  ZeRO / FSDP / distributed optimizer and overlap wording under their usual spellings;
  ``tp * cp * pp * dp`` must equal the GPU count (a mismatch is an error for that case);
  a missing dp is ``count / (tp cp pp)``.
* ``batch``: global batch in sequences, else per-DP batch x dp, else tokens / seq_len.
* ``era``: a stack from 2023 on (Megatron-Core, NeMo, Transformer Engine, TensorRT-LLM
  >= 0.9, or a date >= 2023 in the source) runs FlashAttention, sequence parallelism with
  TP > 1, the distributed optimizer with DP overlap, unless the case says otherwise; a
  2021/2022 Megatron stack (or a source before FlashAttention) runs none of them.
* ``precision``: fp8 / fp4 select the GEMM precision; "fp16 mixed" keeps fp16 gradient
  buffers (Megatron's 2021 fp16 default), otherwise fp32 main gradients.
* ``recompute``: unless stated, none; when the stated mapping does not fit in memory
  without it, selective then full (the run did fit, so it recomputed).
* ``metric``: the kind and unit conversion, :mod:`._metric_kinds`.
* ``inference-batch``: a stated batch; else "max throughput" / inflight batching searches
  the batch (up to what fits in memory) for the best tokens/s; per-user and latency metrics
  use batch 1.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Assumption",
    "CaseError",
    "Notes",
    "read_count",
    "read_model",
    "read_parallelism",
    "read_batch",
    "read_era",
    "read_precision",
    "norm_key",
]


class CaseError(ValueError):
    """The case cannot be read as written (malformed or inconsistent); the message says
    which field and how to fix it."""


@dataclass(frozen=True)
class Assumption:
    rule: str
    text: str


@dataclass
class Notes:
    """The assumptions made while reading one case, in order."""

    items: list[Assumption] = field(default_factory=list)

    def add(self, rule: str, text: str) -> None:
        self.items.append(Assumption(rule, text))

    def rules(self) -> list[str]:
        return sorted({a.rule for a in self.items})

    def as_list(self) -> list[dict[str, str]]:
        return [{"rule": a.rule, "text": a.text} for a in self.items]


def norm_key(k: str) -> str:
    """Field name without case, spaces, dashes or underscores: "Micro-batch" -> "microbatch"."""
    return re.sub(r"[^a-z0-9]", "", str(k).lower())


def _lookup(d: dict | None, names: tuple[str, ...]):
    """The value of the first key of ``d`` whose normalised spelling is in ``names``."""
    if not isinstance(d, dict):
        return None
    norm = {norm_key(k): v for k, v in d.items()}
    for n in names:
        if n in norm and norm[n] is not None:
            return norm[n]
    return None


def _whole(value, where: str, *, minimum: int = 1) -> int:
    """A whole number from a number or a numeric string; else :class:`CaseError`."""
    if isinstance(value, bool):
        raise CaseError(f"{where} = {value!r} is a boolean; give a whole number")
    if isinstance(value, str):
        # one number, optionally with a k/M suffix and words ("4k", "1024 sequences")
        nums = re.findall(r"[0-9]+(?:\.[0-9]+)?", value)
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM])?\b[a-zA-Z ]*", value)
        if len(nums) != 1 or not m:
            raise CaseError(f"{where} = {value!r} is not one whole number; give one number")
        value = float(m.group(1)) * {"k": 1024.0, "m": 1024.0**2}.get((m.group(2) or "").lower(), 1)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CaseError(f"{where} = {value!r} is not a number; give one whole number")
    if value != round(value):
        raise CaseError(f"{where} = {value!r} is not a whole number")
    if value < minimum:
        raise CaseError(f"{where} = {value!r} must be >= {minimum}")
    return int(round(value))


def _truthy(v) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v > 0
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("", "none", "no", "false", "off", "0", "disabled", "n/a"):
            return False
        return True
    return None


# ---- GPU count ------------------------------------------------------------------------------


def read_count(hw: dict, par_product: int | None, notes: Notes) -> int:
    """``hardware.count`` as one positive whole number (``"2x8"`` -> 16)."""
    v = hw.get("count") if isinstance(hw, dict) else None
    if v is None:
        if par_product is None:
            raise CaseError(
                "hardware.count is missing and the parallelism does not give it; "
                "state the number of GPUs"
            )
        notes.add("count", f"GPU count not given: {par_product} = product of the parallel degrees")
        return par_product
    if isinstance(v, list):
        raise CaseError(f"hardware.count = {v!r} is a list; write one case per GPU count")
    if isinstance(v, str):
        s = v.strip().lower()
        prod = re.fullmatch(r"([0-9]+)\s*[x\u00d7*]\s*([0-9]+)", s)
        if prod:
            n = int(prod.group(1)) * int(prod.group(2))
            notes.add("count", f"GPU count {v!r} read as {n}")
            return n
        if re.search(r"[0-9]\s*(->|\u2192|-|to|\.\.)\s*[0-9]", s):
            raise CaseError(f"hardware.count = {v!r} is a range; write one case per GPU count")
    return _whole(v, "hardware.count")


# ---- model ----------------------------------------------------------------------------------

_SHAPE_KEYS: dict[str, tuple[str, ...]] = {
    "n_layers": ("nlayers", "layers", "numlayers", "numhiddenlayers"),
    "d_model": ("dmodel", "hidden", "hiddensize", "hiddendim", "width", "dim"),
    "n_heads": ("nheads", "heads", "numheads", "numattentionheads", "attentionheads"),
    "n_kv_heads": ("nkvheads", "kvheads", "numkeyvalueheads", "numquerygroups", "kvgroups"),
    "vocab_size": ("vocab", "vocabsize", "vocabularysize", "paddedvocabsize"),
    "n_experts": ("nexperts", "experts", "numexperts", "nroutedexperts", "numlocalexperts"),
    "top_k": ("topk", "moeroutertopk", "numexpertspertok", "expertspertoken"),
}
_FFN_KEYS = ("ffn", "dff", "ffnhiddensize", "intermediatesize", "ffnsize", "mlp")
_NAME_SUFFIXES = (
    "-instruct",
    "-chat",
    "-hf",
    "-base",
    "-fp8",
    "-bf16",
    "-fp16",
    " instruct",
    " chat",
    " base",
)

# defaults of a model given by its shape alone (GPT as trained by Megatron)
DEFAULT_VOCAB = 51200  # GPT-2 BPE (50257) padded to a multiple of 1024, Megatron's GPT-3 setup


def _ffn_spec(v, h: int) -> tuple[int, float]:
    """``ffn`` as written ("4h", "4h gelu", "swiglu 14336", 14336) -> (width, gated)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return int(v), 0.0
    spec = str(v).lower()
    gated = 1.0 if ("swiglu" in spec or "geglu" in spec or "gated" in spec) else 0.0
    mult = re.search(r"([0-9.]+)\s*h\b", spec)
    num = re.search(r"\b([0-9]{3,})\b", spec)
    if mult:
        return int(round(float(mult.group(1)) * h)), gated
    if num:
        return int(num.group(1)), gated
    if gated:
        # SwiGLU with no width: Llama's 8h/3 rounded up to a multiple of 256
        return int(256 * math.ceil(8 * h / 3 / 256)), gated
    raise CaseError(f"model.ffn = {v!r}: cannot read the FFN width (write e.g. '4h' or 14336)")


def _name_candidates(name: str) -> list[str]:
    cands = [name, name.split(" (")[0]]
    inner = re.search(r"\(([^)]*)\)", name)
    if inner:
        cands.append(inner.group(1))
    more = []
    for c in cands:
        low = c.lower()
        for suf in _NAME_SUFFIXES:
            if low.endswith(suf):
                more.append(c[: -len(suf)])
    return [c.strip() for c in cands + more if c and c.strip()]


def read_model(model: dict, case_id: str, notes: Notes):
    """The case's LLM as an :class:`~theseus_jax.workload.LLMConfig`."""
    from ..workload._llm import LLMConfig
    from ..workload._load import load_model

    if not isinstance(model, dict):
        raise CaseError(f"model = {model!r} must be an object with a name or shape fields")
    name = str(model.get("name", "") or "")
    known = None
    if name:
        for cand in _name_candidates(name):
            try:
                known = load_model(cand)
            except ValueError:
                continue
            if known.name.lower() != cand.lower() and cand.lower() != name.lower():
                notes.add("model-alias", f"model {name!r} read as {known.name!r}")
            elif known.name.lower() != name.lower():
                notes.add("model-name", f"model {name!r} is the known {known.name!r}")
            break
    from ..workload._schema import _MAX_DEFAULT, _MAX_INT

    shape: dict[str, Any] = {}
    for f, keys in _SHAPE_KEYS.items():
        v = _lookup(model, keys)
        if v is not None:
            shape[f] = _whole(v, f"model.{f}")
            if shape[f] > _MAX_INT.get(f, _MAX_DEFAULT):
                raise CaseError(
                    f"model.{f} = {shape[f]:.6g} is above the largest accepted value "
                    f"{_MAX_INT.get(f, _MAX_DEFAULT):,} (a typo?)"
                )
    ffn = _lookup(model, _FFN_KEYS)
    if known is None and not {"n_layers", "d_model", "n_heads"} <= set(shape):
        raise CaseError(
            f"model {name!r} is not a known model and the case lacks its shape: give "
            "n_layers, d_model and n_heads (and n_kv_heads, ffn, vocab) in 'model'"
        )
    if known is not None and not shape and ffn is None:
        return known
    if known is not None:
        base = {
            f: float(getattr(known, f))
            for f in (
                "n_layers",
                "d_model",
                "n_heads",
                "n_kv_heads",
                "d_ff",
                "vocab_size",
                "ffn_gated",
                "n_experts",
                "top_k",
                "n_shared_experts",
                "n_dense_layers",
                "tied_embeddings",
            )
        }
        base["expert_d_ff"] = float(known.expert_d_ff)
        if "d_model" in shape or "n_heads" in shape:
            base.pop("n_kv_heads")  # rescaled below
        base.update({k: float(v) for k, v in shape.items()})
        base.setdefault("n_kv_heads", base["n_heads"])
        if ffn is not None:
            base["d_ff"], base["ffn_gated"] = _ffn_spec(ffn, int(base["d_model"]))
            base["expert_d_ff"] = base["d_ff"]
        notes.add(
            "model-shape",
            f"shape fields {sorted(shape) + (['ffn'] if ffn is not None else [])} of the case "
            f"override {known.name!r}",
        )
        return LLMConfig(name=name or known.name, **base)
    h = shape["d_model"]
    defaults = []
    if "n_kv_heads" not in shape:
        shape["n_kv_heads"] = shape["n_heads"]
        defaults.append("multi-head attention (kv heads = heads)")
    if ffn is None:
        d_ff, gated = 4 * h, 0.0
        defaults.append("FFN 4h GELU")
    else:
        d_ff, gated = _ffn_spec(ffn, h)
    if "vocab_size" not in shape:
        shape["vocab_size"] = DEFAULT_VOCAB
        defaults.append(f"vocab {DEFAULT_VOCAB}")
    defaults.append("tied input/output embeddings")
    notes.add(
        "model-shape",
        f"model {name or case_id!r} built from the case's shape fields"
        + (f"; defaults: {', '.join(defaults)}" if defaults else ""),
    )
    return LLMConfig(
        d_ff=d_ff,
        ffn_gated=gated,
        tied_embeddings=1.0,
        name=name or case_id,
        **{k: float(v) for k, v in shape.items()},
    )


# ---- parallelism ----------------------------------------------------------------------------

_PAR_KEYS: dict[str, tuple[str, ...]] = {
    "tp": ("tp", "tensorparallel", "tensormodelparallelsize", "tensorparallelsize", "tpsize"),
    "pp": ("pp", "pipelineparallel", "pipelinemodelparallelsize", "pipelineparallelsize"),
    "dp": ("dp", "dataparallel", "dataparallelsize", "dpsize"),
    "cp": ("cp", "contextparallel", "contextparallelsize", "cpsize"),
    "ep": ("ep", "expertparallel", "expertmodelparallelsize", "expertparallelsize"),
    "micro_batch": ("microbatch", "microbatchsize", "mbs", "micro"),
}
_VP_KEYS = (
    "vp",
    "vpp",
    "virtualpipeline",
    "virtualpipelinemodelparallelsize",
    "virtualstages",
    "interleaved",
    "interleavedpipeline",
    "interleave",
)
_SP_KEYS = ("sequenceparallel", "sp", "seqparallel")
_DIST_KEYS = ("distributedoptimizer", "distopt", "zero", "zerostage", "fsdp", "optimizersharding")
_RC_KEYS = (
    "activationrecompute",
    "recompute",
    "recomputation",
    "activationcheckpointing",
    "recomputegranularity",
    "checkpointing",
)
_OVERLAP_KEYS = ("commoverlap", "overlap", "communicationoverlap")


@dataclass
class Parallel:
    tp: int = 1
    pp: int = 1
    dp: int | None = None
    cp: int = 1
    ep: int = 1
    micro_batch: int | None = None
    vp_raw: Any = None
    seq_par: bool | None = None
    dist_opt: bool | None = None
    recompute: str | None = None  # "none" | "selective" | "full"
    dp_overlap: bool | None = None
    tp_overlap: bool | None = None

    def product(self) -> int | None:
        return None if self.dp is None else self.tp * self.pp * self.cp * self.dp


def read_parallelism(par: dict) -> Parallel:
    """The stated parallel layout (unstated fields stay ``None`` for the era rules)."""
    out = Parallel()
    if not isinstance(par, dict):
        par = {}
    # degrees written inside free text ("TP=4, PP=8, CP 2") count as stated
    text = " ".join(str(v) for v in par.values() if isinstance(v, str)).lower()
    for f in ("tp", "pp", "dp", "cp", "ep"):
        hit = re.search(rf"\b{f}\s*[=:]?\s*([0-9]+)\b", text)
        if hit:
            setattr(out, f, int(hit.group(1)))
    for f, keys in _PAR_KEYS.items():
        v = _lookup(par, keys)
        if v is not None:
            setattr(out, f, _whole(v, f"parallelism.{f}"))
    out.vp_raw = _lookup(par, _VP_KEYS)
    sp = _lookup(par, _SP_KEYS)
    if sp is not None:
        out.seq_par = _truthy(sp)
    dist = _lookup(par, _DIST_KEYS)
    if dist is not None:
        out.dist_opt = _truthy(dist)
    rc = _lookup(par, _RC_KEYS)
    if rc is not None:
        s = str(rc).lower()
        out.recompute = (
            "full"
            if s.startswith("full") or s == "true"
            else "selective"
            if s.startswith("sel") or "attention" in s
            else "none"
            if _truthy(rc) is False
            else "full"
        )
    ov = _lookup(par, _OVERLAP_KEYS)
    if ov is not None:
        s = str(ov).lower()
        if _truthy(ov) is False or "no overlap" in s or "not overlapped" in s:
            out.dp_overlap, out.tp_overlap = False, False
        else:
            out.dp_overlap = any(w in s for w in ("dp", "grad", "data", "param", "all"))
            out.tp_overlap = bool(re.search(r"\btp\b|tensor", s)) or "all" in s
    return out


def resolve_interleave(vp_raw, n_layers: int, pp: int, notes: Notes) -> int:
    """Virtual stages per device from a number ("vp": 12) or wording ("5 layers/virtual
    stage", "none")."""
    if vp_raw is None:
        return 1
    if isinstance(vp_raw, (int, float)) and not isinstance(vp_raw, bool):
        return _whole(vp_raw, "parallelism.vp")
    s = str(vp_raw).strip().lower()
    if s in ("none", "", "no", "false", "off", "1"):
        return 1
    if re.fullmatch(r"[0-9]+", s):
        return int(s)
    k = re.search(r"([0-9]+)\s*layers?\s*(/|per)", s)
    if k:
        per_virtual = int(k.group(1))
        v = max(1, n_layers // (pp * per_virtual))
        notes.add("parallelism", f"interleaving {vp_raw!r} read as {v} virtual stages per GPU")
        return v
    raise CaseError(f"parallelism: cannot read the interleaving from {vp_raw!r}")


# ---- batch, era, precision --------------------------------------------------------------------


def read_batch(batch: dict, dp: int, seq_len: float, notes: Notes) -> float:
    """Global batch in sequences."""
    b = batch if isinstance(batch, dict) else {}
    g = _lookup(b, ("globalbatchseqs", "globalbatch", "globalbatchsize", "gbs", "batchsize"))
    if g is not None:
        return float(_whole(g, "batch.global_batch_seqs"))
    per_dp = _lookup(b, ("perdpbatch", "batchperdp", "perreplicabatch", "localbatch", "dpbatch"))
    if per_dp is not None:
        n = _whole(per_dp, "batch.per_dp_batch") * dp
        notes.add("batch", f"global batch = per-DP batch x dp = {n} sequences")
        return float(n)
    tok = _lookup(b, ("tokensperbatch", "globalbatchtokens", "batchtokens", "tokensperstep"))
    if tok is not None and seq_len:
        n = float(tok) / float(seq_len)
        if abs(n - round(n)) > 1e-6 or n < 1:
            raise CaseError(f"batch.tokens_per_batch = {tok} is not a whole number of sequences")
        notes.add("batch", f"global batch = tokens / seq_len = {int(round(n))} sequences")
        return float(round(n))
    raise CaseError(
        "the batch is not stated: give batch.global_batch_seqs (or tokens_per_batch, or a "
        "per-DP batch)"
    )


_MODERN = ("megatron-core", "mcore", "nemo", "transformer engine", "transformerengine", "dgxc")
_LEGACY = ("2104.04473", "sc21", "megatron-lm 2021", "2205.05198")


def read_era(c: dict, notes: Notes) -> str:
    """``"modern"`` (2023+ stack), ``"legacy"`` (2021/22 Megatron) or ``"unknown"``."""
    sw = c.get("software")
    text = " ".join(
        str(x) for x in (c.get("source", ""), c.get("notes", ""), sw if sw is not None else "")
    ).lower()
    if any(m in text for m in _LEGACY):
        notes.add(
            "era",
            "2021/22 Megatron stack: unfused softmax (no FlashAttention), no sequence "
            "parallelism, no distributed optimizer unless stated",
        )
        return "legacy"
    trt = re.search(r"tensorrt-llm\D{0,12}?v?([0-9]+)\.([0-9]+)", text) or re.search(
        r"trt-?llm\D{0,4}v?([0-9]+)\.([0-9]+)", text
    )
    years = [int(y) for y in re.findall(r"\b(20[12][0-9])\b", text)]
    nemo = re.search(r"nemo[^0-9]{0,4}([0-9]{2})\.([0-9]{2})", text)
    if nemo:
        years.append(2000 + int(nemo.group(1)))
    modern = any(m in text for m in _MODERN) or (years and max(years) >= 2023)
    if trt:
        modern = (int(trt.group(1)), int(trt.group(2))) >= (0, 9)
    if modern:
        notes.add(
            "era",
            "2023+ software stack: FlashAttention, sequence parallelism with TP > 1, "
            "distributed optimizer and DP overlap unless stated",
        )
        return "modern"
    if trt or (years and max(years) <= 2022):
        what = f"TensorRT-LLM {trt.group(1)}.{trt.group(2)}" if trt else f"a {max(years)} stack"
        notes.add("era", f"{what}: before the 2023+ defaults; none of them assumed")
        return "legacy"
    return "unknown"


def read_precision(c: dict, notes: Notes, training: bool = True) -> tuple[float, float]:
    """(GEMM precision bits, main-gradient bytes)."""
    prec = str(c.get("precision", "bf16") or "bf16").lower()
    bits = (
        4.0
        if re.search(r"fp4|nvfp4|mxfp4|int4", prec)
        else 8.0
        if re.search(r"fp8|int8|e4m3", prec)
        else 16.0
    )
    grad = 2.0 if "fp16" in prec and "bf16" not in prec else 4.0
    if "precision" not in c:
        notes.add("precision", "precision not stated: bf16")
    if bits < 16 and training:
        notes.add(
            "precision",
            f"{int(bits)}-bit GEMMs for the linear layers only; attention core, logits and "
            "optimizer stay BF16/FP32 (Transformer Engine)",
        )
    elif bits < 16:
        notes.add("precision", f"{int(bits)}-bit weights, activations and KV cache")
    if grad == 2.0:
        notes.add("precision", "fp16 mixed precision: fp16 gradient buffers (2 B per gradient)")
    return bits, grad
