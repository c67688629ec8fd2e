"""Static side of the mesh NoC simulator: its configuration and the traffic it is offered.

:class:`MeshConfig` (mesh size, router pipeline, buffers, reticle crossings, traffic pattern:
all compile-time constants), the port numbering (0 = +x, 1 = -x, 2 = +y, 3 = -y, 4 = local),
the mesh geometry (neighbours, reticle-crossing links), the packet time-stamp encoding, and
the offered traffic: the named synthetic patterns (:func:`destinations`) or a
:class:`TrafficMatrix` of flows. The cycle-level router model that consumes them is
:mod:`._mesh`.

References:
    Dally & Towles, "Principles and Practices of Interconnection Networks" (2004), ch. 3
    (traffic patterns); Jiang et al., "A detailed and flexible cycle-accurate network-on-chip
    simulator" (BookSim2), ISPASS 2013.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["MeshConfig", "TrafficMatrix", "PATTERNS", "destinations"]

E, W, N, S, LOCAL = 0, 1, 2, 3, 4
OPP = np.array([W, E, S, N, LOCAL])
PATTERNS = ("uniform", "transpose", "bitcomp", "tornado", "hotspot", "neighbor", "matrix")
# A packet's creation-time field carries its "measured" mark in bit 30 (times stay < 2**30).
REC_BIT = 1 << 30
TIME_MASK = REC_BIT - 1


class MeshConfig(eqx.Module):
    """Static configuration (shapes and pipeline lengths are compile-time constants).

    Attributes:
        kx, ky: routers per row / column.
        n_vcs: virtual channels per input port.
        buf_depth: flits per VC buffer.
        packet_size: flits per packet.
        routing_delay, vc_alloc_delay: cycles before a head flit may request a VC / the
            switch after it arrives / after it got its VC.
        link_pipe: cycles from switch allocation to arrival in the next router's buffer
            (switch allocation + traversal + link).
        eject_pipe: cycles from switch allocation to delivery at the local sink (switch
            allocation + traversal + ejection channel).
        inject_delay: cycles of the injection channel from the source queue to the router.
        credit_pipe: cycles for a credit to reach the upstream router.
        queue_cap: packets a source queue holds (overflow is flagged, not grown).
        reticle_x, reticle_y: routers per reticle along x / y (0 = one reticle); links that
            cross a reticle boundary take ``d2d_extra`` more cycles (via slower credit
            return, i.e. less throughput per VC) — their width is modelled by
            ``d2d_period``: a crossing link accepts one flit every ``d2d_period`` cycles.
        pattern: traffic pattern name (static, selects the destination function).
        hotspot_frac: share of packets sent to node 0 with the "hotspot" pattern.
    """

    kx: int = eqx.field(static=True)
    ky: int = eqx.field(static=True)
    n_vcs: int = eqx.field(static=True, default=8)
    buf_depth: int = eqx.field(static=True, default=8)
    packet_size: int = eqx.field(static=True, default=1)
    routing_delay: int = eqx.field(static=True, default=1)
    vc_alloc_delay: int = eqx.field(static=True, default=1)
    link_pipe: int = eqx.field(static=True, default=3)
    eject_pipe: int = eqx.field(static=True, default=3)
    inject_delay: int = eqx.field(static=True, default=1)
    credit_pipe: int = eqx.field(static=True, default=2)
    queue_cap: int = eqx.field(static=True, default=1024)
    reticle_x: int = eqx.field(static=True, default=0)
    reticle_y: int = eqx.field(static=True, default=0)
    d2d_period: int = eqx.field(static=True, default=1)
    pattern: str = eqx.field(static=True, default="uniform")
    hotspot_frac: float = eqx.field(static=True, default=0.1)

    def __check_init__(self):
        if self.kx < 2 or self.ky < 1:
            raise ValueError(f"mesh must be at least 2 x 1 routers, got {self.kx} x {self.ky}")
        if self.n_vcs < 1 or self.buf_depth < 1 or self.packet_size < 1:
            raise ValueError("n_vcs, buf_depth and packet_size must be >= 1")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {self.pattern!r}")
        if min(self.link_pipe, self.eject_pipe, self.credit_pipe) < 1:
            raise ValueError("link_pipe, eject_pipe and credit_pipe must be >= 1 cycle")
        if self.d2d_period < 1:
            raise ValueError("d2d_period must be >= 1")
        if self.routing_delay < 0 or self.vc_alloc_delay < 0 or self.inject_delay < 0:
            raise ValueError("routing_delay, vc_alloc_delay and inject_delay must be >= 0")

    @property
    def n(self) -> int:
        return self.kx * self.ky


class TrafficMatrix(eqx.Module):
    """Offered traffic as a matrix of flows (``pattern="matrix"``): arrays, so a new matrix
    of the same mesh reuses the compiled simulator.

    Attributes:
        rate: ``[N]`` flits per cycle each source offers (Bernoulli packet arrivals with
            probability ``rate / packet_size`` per cycle).
        cdf: ``[N, N]`` cumulative destination distribution of each source (row ``i``:
            ``P(dest <= j)``; the last column is 1 for a source that sends).
    """

    rate: jnp.ndarray
    cdf: jnp.ndarray

    @staticmethod
    def from_flows(n: int, flows) -> TrafficMatrix:
        """Build from ``flows = [(src, dst, flits_per_cycle), ...]`` on ``n`` routers (host
        side). Several flows of one source share its injection channel: their rates add."""
        w = np.zeros((n, n))
        for src, dst, r in flows:
            if not (0 <= src < n and 0 <= dst < n):
                raise ValueError(f"flow ({src} -> {dst}) outside the {n}-router mesh")
            if r < 0:
                raise ValueError(f"flow ({src} -> {dst}) has a negative rate {r}")
            w[src, dst] += r
        rate = w.sum(axis=1)
        if np.any(rate > 1.0 + 1e-9):
            i = int(np.argmax(rate))
            raise ValueError(
                f"source {i} offers {rate[i]:.3f} flits/cycle: one injection channel carries "
                "at most 1; split its flows over more sources or lower the rates"
            )
        p = np.where(rate[:, None] > 0, w / np.maximum(rate[:, None], 1e-30), 0.0)
        cdf = np.cumsum(p, axis=1)
        cdf[:, -1] = 1.0
        return TrafficMatrix(jnp.asarray(rate, jnp.float32), jnp.asarray(cdf, jnp.float32))

    def scaled(self, factor) -> TrafficMatrix:
        """The same flows at ``factor`` times the rate."""
        return TrafficMatrix(self.rate * factor, self.cdf)


def _neighbors(kx, ky):
    idx = np.arange(kx * ky)
    x, y = idx % kx, idx // kx
    nb = np.full((kx * ky, 4), -1, np.int32)
    nb[:, E] = np.where(x + 1 < kx, idx + 1, -1)
    nb[:, W] = np.where(x - 1 >= 0, idx - 1, -1)
    nb[:, N] = np.where(y + 1 < ky, idx + kx, -1)
    nb[:, S] = np.where(y - 1 >= 0, idx - kx, -1)
    return nb


def _crossing(cfg: MeshConfig) -> np.ndarray:
    """[N, 4] True where an output link crosses a reticle boundary."""
    idx = np.arange(cfg.n)
    x, y = idx % cfg.kx, idx // cfg.kx
    cross = np.zeros((cfg.n, 4), bool)
    if cfg.reticle_x > 0:
        cross[:, E] = ((x + 1) % cfg.reticle_x == 0) & (x + 1 < cfg.kx)
        cross[:, W] = (x % cfg.reticle_x == 0) & (x > 0)
    if cfg.reticle_y > 0:
        cross[:, N] = ((y + 1) % cfg.reticle_y == 0) & (y + 1 < cfg.ky)
        cross[:, S] = (y % cfg.reticle_y == 0) & (y > 0)
    return cross


def destinations(cfg: MeshConfig, key, src, traffic=None):
    """Destination of a new packet from each source for the configured pattern."""
    kx, ky, n = cfg.kx, cfg.ky, cfg.n
    x, y = src % kx, src // kx
    if cfg.pattern == "matrix":
        u = jax.random.uniform(key, src.shape)
        return jnp.sum(u[:, None] >= traffic.cdf, axis=1).clip(0, n - 1).astype(jnp.int32)
    if cfg.pattern == "uniform":  # BookSim: uniform over all nodes, the source included
        return jax.random.randint(key, src.shape, 0, n)
    if cfg.pattern == "transpose":
        return (x % ky) * kx + (y % kx)
    if cfg.pattern == "bitcomp":
        return (n - 1) - src
    if cfg.pattern == "tornado":
        return y * kx + (x + (kx + 1) // 2 - 1) % kx
    if cfg.pattern == "neighbor":
        return y * kx + (x + 1) % kx
    # hotspot: a fraction to node 0, the rest uniform
    k1, k2 = jax.random.split(key)
    hot = jax.random.uniform(k1, src.shape) < cfg.hotspot_frac
    return jnp.where(hot, 0, jax.random.randint(k2, src.shape, 0, n))
