r"""Traffic derived from a design and a workload mapping: the flows of each communication
phase of a training step, as :class:`~theseus_jax.sim.TrafficMatrix` es on simulation windows.

Each phase is placed on a window of the wafer's mesh (a core-level window of the stage region,
at most ``8 x 8`` routers, or the reticle-level mesh, at most ``16 x 16``) with the routers,
virtual channels, buffers, packet length and reticle-crossing links of the design, and gets
the flows F0 assumes, at the rate F0 offers them (flits per cycle, link capacity = 1):

* ``tp_multicast`` -- GEMM inputs multicast along each row of the region from its middle
  outward (each core forwards to its outer neighbour) at F0's link utilisation ``rho`` of the
  busiest GEMM stream (ideal-network pace, :func:`~theseus_jax.cost.wafer.gemm_stream_terms`);
* ``tp_reduce`` -- partial sums reduced along each column toward the middle row, same rate;
* ``tp_all_to_all`` -- the attention redistribution: every core to every core of the window
  (uniform), at the XY channel-load bound of uniform traffic ``4 / k`` (``/ P`` when the
  region's bisection links are reticle crossings of period ``P``): F0 charges it at full
  bisection bandwidth;
* ``pp_p2p`` -- activations from each stage region to the next over the region boundary: on
  the reticle-level mesh, every reticle router of a region's east edge sends to its east
  neighbour at the crossing-link rate ``1 / P``;
* ``dp_reduce`` -- gradient ring reduction between data-parallel replicas: neighbour flows
  between adjacent regions (a ring along each row of regions), rate ``1 / P``;
* ``dram_stream`` -- weight streaming (or activation spill) from edge DRAM ports: the west
  column of the core window stands for the ports and sends to every core of its row at the
  streaming bandwidth F0 assumes (per-core share of ``stream_bw``, capped at one flit per
  cycle per port).

Phases that the mapping does not have (no pipeline, no data parallelism, weights resident)
are left out. The windows are the same kind the F1 evaluator measures; this module exposes
them as traffic that can be simulated, swept (scale the matrix) and inspected.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..sim import MeshConfig, TrafficMatrix
from ._f1 import _NEEDS_MAPPING, _host, _rho, _terms_jit
from ._windows import RETICLE_CAP, WINDOW_K, NetParams, d2d_period, packet_flits, router_kw

__all__ = ["Phase", "workload_traffic"]


class Phase(NamedTuple):
    """One communication phase as simulator input.

    Attributes:
        name: phase name (see module docstring).
        cfg: :class:`~theseus_jax.sim.MeshConfig` of the window (``pattern="matrix"``).
        traffic: :class:`~theseus_jax.sim.TrafficMatrix` of its flows at F0's rate.
        level: ``"core"`` or ``"reticle"`` window.
        offered: mean offered flits/cycle per sending router.
        description: what the flows are.
    """

    name: str
    cfg: MeshConfig
    traffic: TrafficMatrix
    level: str
    offered: float
    description: str


def _cfg(kx, ky, net: NetParams, tech, *, reticle=0, period=1):
    return MeshConfig(
        kx=kx,
        ky=ky,
        n_vcs=int(round(net.n_vcs)),
        buf_depth=int(round(net.buffer_depth)),
        packet_size=packet_flits(net.link_bits),
        pattern="matrix",
        reticle_x=reticle,
        reticle_y=reticle,
        d2d_period=period if reticle else 1,
        **router_kw(tech),
    )


def _mean_sender_rate(flows) -> float:
    per = {}
    for s, _, r in flows:
        per[s] = per.get(s, 0.0) + r
    return float(np.mean(list(per.values()))) if per else 0.0


def workload_traffic(design, workload, tech, *, mapping) -> dict[str, Phase]:
    """The communication phases of one training step of ``workload`` on ``design``.

    Args:
        design: one (unbatched) :class:`~theseus_jax.WaferDesign`.
        workload: :class:`~theseus_jax.TrainingWorkload`.
        tech: :class:`~theseus_jax.Tech`.
        mapping: the :class:`~theseus_jax.Mapping` (e.g. F0's best).

    Returns:
        ``{name: Phase}`` in the order of the module docstring; simulate one with
        ``measure_batch(ph.cfg, [1.0], traffic=ph.traffic)`` (factors scale the rates).
    """
    if mapping is None:
        raise ValueError(_NEEDS_MAPPING.format(fn="workload_traffic"))
    t = _host(_terms_jit(design, tech, workload, mapping))
    net = NetParams.of(design, t.crosses)
    cores = float(t.tp) * float(np.asarray(design.usable_cores_per_reticle()))
    side = int(max(2, min(WINDOW_K, round(np.sqrt(cores)))))
    crosses = net.crosses > 0
    period = d2d_period(net.d2d_bw_ratio)
    core_period = period if crosses else 1
    k = side
    n = k * k
    idx = lambda x, y: y * k + x  # noqa: E731
    phases: dict[str, Phase] = {}
    # the region's GEMM streams cross reticle boundaries when it spans reticles: the window's
    # links are then of that class (period P), as the F1 evaluator's windows are
    ret = 1 if crosses else 0
    rho = float(np.max(_rho(t), initial=0.0))
    if rho > 0:
        mid = k // 2
        r = min(rho / core_period, 1.0)
        mc = [
            (idx(x, y), idx(x + 1 if x >= mid else x - 1, y), r)
            for y in range(k)
            for x in range(k)
            if (x >= mid and x + 1 < k) or (x < mid and x - 1 >= 0)
        ]
        rd = [
            (idx(x, y), idx(x, y - 1 if y > mid else y + 1), r)
            for x in range(k)
            for y in range(k)
            if y != mid
        ]
        for name, flows, what in (
            ("tp_multicast", mc, "GEMM inputs multicast centre-out along rows"),
            ("tp_reduce", rd, "GEMM partial sums reduced along columns to the middle row"),
        ):
            phases[name] = Phase(
                name,
                _cfg(k, k, net, tech, reticle=ret, period=core_period),
                TrafficMatrix.from_flows(n, flows),
                "core",
                _mean_sender_rate(flows),
                what,
            )
    if float(getattr(t, "a2a_s", 0.0)) > 0:
        r = min(1.0, 4.0 / k / core_period)
        flows = [(s, d, r / n) for s in range(n) for d in range(n)]
        phases["tp_all_to_all"] = Phase(
            "tp_all_to_all",
            _cfg(k, k, net, tech, reticle=(k // 2 if crosses else 0), period=core_period),
            TrafficMatrix.from_flows(n, flows),
            "core",
            r,
            "attention redistribution, uniform over the region at its bisection bound",
        )
    rows = int(round(net.reticle_rows))
    cols = int(round(net.reticle_cols))
    rkx, rky = min(cols, RETICLE_CAP), max(1, min(rows, RETICLE_CAP))
    tp = int(round(float(t.tp)))
    # a region is a near-square block of reticles: its width along x
    rw = int(max(1, min(rkx, round(np.sqrt(tp)))))
    if rkx >= 2:
        rn = rkx * rky
        ridx = lambda x, y: y * rkx + x  # noqa: E731
        rate = 1.0 / period
        rcfg = _cfg(rkx, rky, net, tech, reticle=1, period=period)
        edges = [x for x in range(rkx - 1) if (x + 1) % rw == 0] or [rkx // 2 - 1]
        if float(t.pp) > 1:
            flows = [(ridx(x, y), ridx(x + 1, y), rate) for y in range(rky) for x in edges]
            phases["pp_p2p"] = Phase(
                "pp_p2p",
                rcfg,
                TrafficMatrix.from_flows(rn, flows),
                "reticle",
                rate,
                "activations across each region boundary to the next stage",
            )
        if float(t.dp) > 1 and hasattr(t, "dp_on_s"):
            flows = []
            for y in range(rky):
                for x in edges:
                    flows.append((ridx(x, y), ridx(x + 1, y), rate))
                    flows.append((ridx(x + 1, y), ridx(x, y), rate))
            phases["dp_reduce"] = Phase(
                "dp_reduce",
                rcfg,
                TrafficMatrix.from_flows(rn, flows),
                "reticle",
                rate,
                "gradient ring reduction between adjacent data-parallel regions (both ways)",
            )
    if float(getattr(t, "stream", 0.0)) > 0:
        link_bw = float(np.asarray(design.link_bw_bytes_per_s()))
        stream_bw = float(t.stream_bw_bytes_per_s)
        per_core = stream_bw / max(cores, 1.0) / max(link_bw, 1e-30)
        r_port = min(1.0, per_core * (k - 1))
        if r_port > 1e-4:  # ports idle below this (weights resident or off-wafer)
            flows = [
                (idx(0, y), idx(x, y), r_port / (k - 1)) for y in range(k) for x in range(1, k)
            ]
            phases["dram_stream"] = Phase(
                "dram_stream",
                _cfg(k, k, net, tech, reticle=ret, period=core_period),
                TrafficMatrix.from_flows(n, flows),
                "core",
                r_port,
                "weights streamed from edge DRAM ports (west column) to every core of the row",
            )
    return phases
