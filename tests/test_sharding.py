"""F0 sharded over devices: four forced host devices give the one-device results."""

import os
import subprocess
import sys

from _helpers import REPO

SCRIPT = r"""
import jax, numpy as np
import theseus_jax as tj
from theseus_jax.metrics._evaluate import default_mappings

assert len(jax.devices()) == 4, jax.devices()
tech = tj.load_tech("n7")
wl = tj.load_training_workload("gpt3-xl")
ds = tj.load_space("theseus_2024").sample(jax.random.PRNGKey(1), 10)  # not a multiple of 4
maps = default_mappings(ds, wl)
one = tj.make_evaluator(wl, mappings=maps, tech=tech, devices=jax.devices()[:1])
four = tj.make_evaluator(wl, mappings=maps, tech=tech)  # every visible device
assert four.devices == tuple(jax.devices()) and four.chunk_size % 4 == 0
r1, r4 = one(ds), four(ds)
# the design axis really is split: each device holds a quarter of a sharded batch
spec = jax.sharding.NamedSharding(
    jax.sharding.Mesh(np.asarray(jax.devices()), ("designs",)),
    jax.sharding.PartitionSpec("designs"),
)
placed = jax.device_put(jax.tree_util.tree_map(lambda x: x[:8], ds), spec)
assert len(placed.macs_per_core.addressable_shards) == 4
for a, b in zip(jax.tree_util.tree_leaves(r4), jax.tree_util.tree_leaves(r1), strict=True):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype.kind == "f":  # batch-shape-dependent fusion may move the last bit
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    else:
        np.testing.assert_array_equal(a, b)
# a batch over the per-device chunk runs in chunks, still the same
small = tj.make_evaluator(
    wl, mappings=maps, tech=tech, memory_budget_bytes=512 * maps.size()
)  # one design per device per call
assert small.chunk_size == 4
rs = small(ds)
np.testing.assert_array_equal(np.asarray(rs.mapping_index), np.asarray(r1.mapping_index))
np.testing.assert_allclose(
    np.asarray(rs.metrics.step_time_s), np.asarray(r1.metrics.step_time_s), rtol=1e-6
)
print("ok")
"""


def test_four_forced_host_devices_match_one_device():
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert r.stdout.strip().endswith("ok")


def test_devices_must_not_be_empty():
    import pytest

    import theseus_jax as tj
    from theseus_jax.metrics._evaluate import default_mappings

    wl = tj.load_training_workload("gpt3-xl")
    d = tj.load_system("wse2")
    with pytest.raises(ValueError, match="at least one JAX device"):
        tj.make_evaluator(wl, mappings=default_mappings(d, wl), tech=tj.load_tech("n7"), devices=[])
