"""Strict test harness: CPU, no implicit rank promotion (STYLE.md habit 13)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
