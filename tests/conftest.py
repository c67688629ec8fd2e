"""Strict test harness: CPU, no implicit rank promotion (STYLE.md habit 13); and the shipped
configs several test files share, loaded once per module (shared helper functions are in
``_helpers.py``)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="module")
def n7():
    """The 7 nm technology (``configs/tech/n7.json``)."""
    from theseus_jax.io import load_tech

    return load_tech("n7")


@pytest.fixture(scope="module")
def wse2():
    """The Cerebras WSE-2 wafer system config."""
    from theseus_jax.io import load_system

    return load_system("wse2")


@pytest.fixture(scope="module")
def a100():
    """The A100 DGX GPU system config (its own GPU count)."""
    from theseus_jax.io import load_system

    return load_system("a100_dgx")


@pytest.fixture(scope="module")
def xl():
    """GPT-3 XL training with the workload file's defaults."""
    from theseus_jax.workload import load_training_workload

    return load_training_workload("gpt3-xl")
