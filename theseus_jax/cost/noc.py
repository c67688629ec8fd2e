r"""On-wafer network terms and the factors every fidelity composes them with.

A wafer's cost function (training :mod:`~theseus_jax.cost.wafer`, inference
:mod:`~theseus_jax.cost.wafer_inference`) splits into *terms* that do not depend on how
the network performs (compute, memory, off-wafer links, energy, and each mesh stream's
traffic under an **ideal** network: full link bandwidth, one-cycle service, no waiting)
and a small :class:`NetworkFactors` record saying how the network performs:

* per GEMM mesh stream (G,): its effective-bandwidth factor relative to the ideal pace
  ``tau`` (kept as the phase duration ``tau / factor``, ``gemm_phase_s``);
* ``gemm_wait_cycles`` (G,): contention wait per hop of each stream (cycles);
* ``a2a_bw``: factor of the attention all-to-all through the region's bisection;
* ``reticle_bw``: factor of bulk transfers across reticle boundaries (pipeline
  point-to-point, data-parallel reduction).

Every fidelity composes the **same** terms: F0 with :func:`analytic_factors` (credit-loop
efficiency and an M/D/1 wait, :func:`noc_flow_terms` / :func:`paced_gemm`), F1
(:mod:`theseus_jax.fidelity`) with factors measured on the cycle-level simulator, and
:func:`ideal_factors` gives the ideal-network bound. ``compose(terms, analytic_factors(
terms))`` *is* F0, so F1 with F0's factors equals F0 and every F0/F1 difference comes from
the measured factors.

GEMMs are partitioned 2-D over a region's ``P x P`` core mesh (weight-stationary): ``K``
over rows, ``N`` over columns. Per GEMM every core computes ``M x K/P x N/P``; the MAC array
of a core is a ``sqrt(macs) x sqrt(macs)`` block, so its utilisation loses the padding of
``K/P`` and ``N/P`` to multiples of ``sqrt(macs)``; cores idle when ``K < P`` or ``N < P``;
and the array is starved when the SRAM delivers fewer than ``3 bits sqrt(macs)`` bits per
cycle. The input ``M x K/P`` is multicast along each row and partial sums ``M x N/P``
reduced along each column (XY routing puts them on disjoint links); the busiest link carries
``max(M K, M N) / P`` values at the core-link bandwidth, or at the inter-reticle bandwidth
where the row crosses reticle boundaries.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from .._numerics import safe_div, safe_sqrt
from .collectives import mdl_queue_wait

__all__ = [
    "Streams",
    "NetworkFactors",
    "mesh_streams",
    "concat_streams",
    "stream_rho",
    "stream_times",
    "ideal_factors",
    "with_gemm_bw",
    "analytic_factors",
    "gemm_stream_terms",
    "noc_flow_terms",
    "paced_gemm",
    "PACKET_PAYLOAD_BITS",
    "MAX_PACKET_FLITS",
]

PACKET_PAYLOAD_BITS = 512.0  # [U] payload of one NoC packet (32 16-bit values); F1 uses it too
MAX_PACKET_FLITS = 8.0  # [U] longest packet (flits)


def _pad_eff(x, a):
    """Utilisation of a length-``x`` loop on a ``a``-wide array: ``x / (ceil(x/a) a)``."""
    xx = jnp.maximum(x, 1.0)
    return safe_div(xx, jnp.ceil(safe_div(xx, a) - 1e-4) * a)


def gemm_stream_terms(design, tech, cores, m, n, k, count, bits, d2d_cross):
    """Per-GEMM terms of ``count`` GEMMs ``(m x k)(k x n)`` spread over ``cores`` cores.

    Returns ``(t_compute, t_bw, hops, lat0, tau_star, c_inst, p)``: compute time at the
    achieved MAC-array efficiency (s), busiest-link time at full link bandwidth (s), hops,
    zero-load latency (s), the pacing optimum of an ideal network (one-cycle service, full
    link bandwidth), cores per GEMM instance and the instance's mesh side.
    """
    f = design.clock_hz
    a = safe_sqrt(design.macs_per_core)
    c_inst = jnp.maximum(safe_div(cores, count), 1.0)  # cores per GEMM instance
    p = safe_sqrt(c_inst)
    busy = jnp.minimum(1.0, safe_div(k, p)) * jnp.minimum(1.0, safe_div(n, p))
    k_loc = jnp.maximum(safe_div(k, p), 1.0)
    n_loc = jnp.maximum(safe_div(n, p), 1.0)
    eta_pad = _pad_eff(k_loc, a) * _pad_eff(n_loc, a)
    need_bits = 3.0 * bits * a
    eta_sram = jnp.minimum(1.0, safe_div(design.sram_bw_bits_per_cycle, need_bits))
    peak_core = 2.0 * design.macs_per_core * f * safe_div(16.0, bits)
    flops = 2.0 * m * n * k * count
    t_comp = safe_div(flops, cores * peak_core * busy * eta_pad * eta_sram)

    bytes_el = bits / 8.0
    link_vals = jnp.maximum(m * k, m * n) / p  # values on the busiest link per instance
    link_bw = design.link_bw_bytes_per_s() * jnp.where(
        d2d_cross > 0, jnp.minimum(1.0, design.d2d_bw_ratio), 1.0
    )
    t_bw = safe_div(link_vals * bytes_el, link_bw) * jnp.where(c_inst > 1.0, 1.0, 0.0)
    # instances packed several per core need no mesh traffic
    t_bw = t_bw * jnp.minimum(1.0, safe_div(cores, count))
    # Both collectives run from/to the middle of the row/column over both link directions:
    # the multicast crosses p/2 routers, the reduction p/2 routers and p/2 adders.
    hops = p
    cyc = safe_div(1.0, f)
    lat0 = (
        hops * (tech.router_delay_cycles + tech.link_delay_cycles)
        + 0.5 * p * tech.reduce_add_cycles
        + d2d_cross * tech.d2d_delay_cycles
    ) * cyc
    tau_star = jnp.maximum(t_bw / 0.95, t_bw + safe_sqrt(0.5 * hops * cyc * t_bw))
    return t_comp, t_bw, hops, lat0, tau_star, c_inst, p


def noc_flow_terms(design, tech, d2d_cross):
    r"""Flow-control terms of F0's congestion model for streams on one class of links.

    .. math::

        s = \min(8, \max(1, 512 / w))\, P, \qquad
        \eta = \min\!\Big(1, \frac{B\, P}{t_{crt}}\Big), \qquad
        t_{crt} = 2 t_{hop} + 1

    ``s`` is the cycles one packet holds a link (flits of a 512-bit packet on a ``w``-bit
    link, 1 to 8 -- fractional, so F0 stays differentiable in ``w``; the simulator rounds
    up -- times the link's period ``P``: ``1 / d2d_bw_ratio`` on reticle
    crossings, else 1): the service time of the M/D/1 wait. ``eta`` is the share of link
    bandwidth one stream keeps with credit-based flow control: a VC of ``B`` flit buffers
    can have at most ``B`` flits in flight per credit round trip ``t_crt`` (flit pipeline,
    credit pipeline, one cycle to process the credit; ``t_hop`` = router + link delay),
    and a stream of packets holds one VC at a time.

    Returns:
        ``(eta, s_cycles)``.

    References:
        Dally & Towles, *Principles and Practices of Interconnection Networks* (2004),
        sec. 13.3 (credit round trip: ``B >= t_crt b / L_f`` for full throughput).
    """
    period = jnp.where(d2d_cross > 0, safe_div(1.0, jnp.minimum(1.0, design.d2d_bw_ratio)), 1.0)
    # fractional flits (the mean over packets of a stream): keeps F0 smooth in link width
    flits = jnp.clip(
        safe_div(PACKET_PAYLOAD_BITS, design.link_bits_per_cycle), 1.0, MAX_PACKET_FLITS
    )
    hop = jnp.maximum(jnp.round(tech.router_delay_cycles + tech.link_delay_cycles), 1.0)
    t_crt = 2.0 * hop + 1.0
    eta = jnp.minimum(1.0, safe_div(design.buffer_depth * period, t_crt))
    return eta, flits * period


def paced_gemm(t_comp, t_bw, hops, lat0, cyc, eta, s_cycles, overlap):
    r"""F0's paced time of a GEMM's mesh stream.

    The stream needs ``t_bw / eta`` on its busiest link; at utilisation ``rho`` each of its
    ``hops`` hops waits ``s rho / (2 (1 - rho))`` cycles (M/D/1, ``s`` cycles per packet).
    Cores pace injection: minimising :math:`\tau + h c s \rho / (2(1-\rho))` over
    ``tau >= t_bw / (0.95 eta)`` gives
    :math:`\tau^* = t_e + \sqrt{h c s\, t_e / 2}` with :math:`t_e = t_{bw} / \eta`.
    With ``overlap`` the phase lasts ``max(t_compute, tau*)``. The overlapped GEMM time is
    therefore never larger for faster compute or wider links.

    Returns:
        ``(tau, wait_cycles, t_alone)``: phase duration, wait per hop, and the stream time
        ``tau + lat0 + hops c wait``.
    """
    t_e = safe_div(t_bw, eta)
    tau_star = jnp.maximum(t_e / 0.95, t_e + safe_sqrt(0.5 * hops * cyc * s_cycles * t_e))
    tau = jnp.where(overlap, jnp.maximum(t_comp, tau_star), tau_star)
    wait = s_cycles * mdl_queue_wait(safe_div(t_e, tau))
    return tau, wait, tau + lat0 + hops * cyc * wait


class Streams(eqx.Module):
    """The mesh streams of ``G`` GEMMs on a region, under an ideal network. Shapes ``(G,)``.

    Attributes:
        t_comp_s: GEMM compute time at the achieved MAC-array efficiency.
        t_bw_s: busiest-link time at full link bandwidth (0: no mesh traffic).
        hops: hops of the stream's packets.
        lat0_s: zero-load latency (hops x router/link delay, reduction adds, crossings).
        tau_s: ideal-network phase duration (pacing optimum; ``max(t_comp, .)`` when the
            stream overlaps its GEMM's compute).
        overlap: 1 where the stream overlaps the GEMM's compute, 0 where it follows it.
        eta: credit-loop efficiency of the stream's link class (F0's model).
        s_cycles: cycles a packet holds the link (F0's M/D/1 service time).
        cycle_s: clock period.
        bit_hops, cross_bits: NoC bit-hops and reticle-crossing bits (energy).
    """

    t_comp_s: jnp.ndarray
    t_bw_s: jnp.ndarray
    hops: jnp.ndarray
    lat0_s: jnp.ndarray
    tau_s: jnp.ndarray
    overlap: jnp.ndarray
    eta: jnp.ndarray
    s_cycles: jnp.ndarray
    cycle_s: jnp.ndarray
    bit_hops: jnp.ndarray
    cross_bits: jnp.ndarray

    def rho(self):
        """Link utilisation of each stream at its ideal pace, ``t_bw / tau`` (0: none)."""
        return jnp.where(self.t_bw_s > 0, safe_div(self.t_bw_s, self.tau_s), 0.0)


def mesh_streams(design, tech, cores, m, n, k, count, bits, d2d_cross, overlap) -> Streams:
    """:class:`Streams` of ``count`` GEMMs ``(m x k)(k x n)`` each over ``cores`` cores.

    ``overlap`` (scalar or per GEMM, > 0 = overlapped) says whether a stream overlaps its
    GEMM's compute; ``d2d_cross`` > 0 when the region's rows cross reticle boundaries.
    """
    t_comp, t_bw, hops, lat0, tau_star, c_inst, p = gemm_stream_terms(
        design, tech, cores, m, n, k, count, bits, d2d_cross
    )
    ovl = jnp.broadcast_to(jnp.where(jnp.asarray(overlap) > 0, 1.0, 0.0), t_comp.shape)
    eta, s_cyc = noc_flow_terms(design, tech, d2d_cross)
    # bit-hops: inputs fan out along rows, partial sums gather along columns (~p hops each)
    vals_moved = (m * k + m * n) * count * jnp.where(c_inst > 1.0, 1.0, 0.0)
    full = lambda x: jnp.broadcast_to(x, t_comp.shape)  # noqa: E731
    return Streams(
        t_comp_s=t_comp,
        t_bw_s=t_bw,
        hops=full(hops),
        lat0_s=full(lat0),
        tau_s=jnp.where(ovl > 0, jnp.maximum(t_comp, tau_star), tau_star),
        overlap=ovl,
        eta=full(eta),
        s_cycles=full(s_cyc),
        cycle_s=full(safe_div(1.0, design.clock_hz)),
        bit_hops=full(vals_moved * bits * p),
        cross_bits=full(vals_moved * bits * d2d_cross),
    )


def concat_streams(*streams: Streams) -> Streams:
    """One :class:`Streams` of all the given streams (concatenated along ``G``; for
    host-side use: a cost function keeps its stream groups apart, so that XLA fuses each
    group's arithmetic instead of materialising the concatenation)."""
    leaves = [
        jnp.concatenate([jnp.atleast_1d(getattr(s, f)) for s in streams])
        for f in Streams.__dataclass_fields__
    ]
    return Streams(*leaves)


def stream_rho(groups) -> jnp.ndarray:
    """Link utilisation of every stream of ``groups`` at its ideal pace, flattened."""
    return jnp.concatenate([jnp.atleast_1d(g.rho()) for g in groups])


class NetworkFactors(eqx.Module):
    """How the network performs (see module docstring), per stream group of the terms.

    Attributes:
        gemm_phase_s: per group, ``(G_i,)`` phase duration of each GEMM stream's traffic
            (s): the ideal pace ``tau`` divided by the stream's effective-bandwidth factor
            (``<= 1``); ``Streams.tau_s`` on an ideal network. (A duration rather than the
            factor itself keeps F0's own composition free of a ``tau / (tau / tau_F0)``
            round trip, which XLA does not simplify.)
        gemm_wait_cycles: per group, ``(G_i,)`` contention wait per hop (cycles).
        a2a_bw: factor of the attention all-to-all (scalar, ``<= 1``).
        reticle_bw: factor of bulk transfers across reticle boundaries (scalar, ``<= 1``).
    """

    gemm_phase_s: tuple
    gemm_wait_cycles: tuple
    a2a_bw: jnp.ndarray
    reticle_bw: jnp.ndarray

    def gemm_bw(self, groups) -> jnp.ndarray:
        """Effective-bandwidth factor of every stream, ``tau / phase`` (1 without traffic),
        flattened over the groups."""
        return jnp.concatenate(
            [
                jnp.atleast_1d(jnp.where(g.t_bw_s > 0, safe_div(g.tau_s, ph, 1.0), 1.0))
                for g, ph in zip(groups, self.gemm_phase_s, strict=True)
            ]
        )


def ideal_factors(groups) -> NetworkFactors:
    """An ideal network: every stream at its ideal pace, no contention, full bandwidth."""
    return NetworkFactors(
        gemm_phase_s=tuple(g.tau_s for g in groups),
        gemm_wait_cycles=tuple(jnp.zeros_like(g.tau_s) for g in groups),
        a2a_bw=jnp.asarray(1.0),
        reticle_bw=jnp.asarray(1.0),
    )


def with_gemm_bw(groups, gemm_bw, gemm_wait_cycles, a2a_bw, reticle_bw) -> NetworkFactors:
    """:class:`NetworkFactors` from per-stream bandwidth factors and waits, flattened over
    the groups (what F1 measures): phase ``tau / gemm_bw``."""
    bw, wait = jnp.asarray(gemm_bw), jnp.asarray(gemm_wait_cycles)
    phases, waits, i = [], [], 0
    for g in groups:
        n = int(jnp.shape(g.tau_s)[0])
        phases.append(safe_div(g.tau_s, jnp.maximum(bw[i : i + n], 1e-9)))
        waits.append(wait[i : i + n])
        i += n
    return NetworkFactors(
        gemm_phase_s=tuple(phases),
        gemm_wait_cycles=tuple(waits),
        a2a_bw=jnp.asarray(a2a_bw),
        reticle_bw=jnp.asarray(reticle_bw),
    )


def analytic_factors(groups, eta_reticle) -> NetworkFactors:
    """F0's network model: each stream paced with the credit-loop efficiency and the M/D/1
    wait of its packet service time (:func:`paced_gemm`); the all-to-all at full bisection
    bandwidth; reticle crossings at their credit-loop efficiency."""
    phases, waits = [], []
    for s in groups:
        tau_f0, wait, _ = paced_gemm(
            s.t_comp_s, s.t_bw_s, s.hops, s.lat0_s, s.cycle_s, s.eta, s.s_cycles, s.overlap > 0
        )
        phases.append(tau_f0)
        waits.append(jnp.where(s.t_bw_s > 0, wait, 0.0))
    return NetworkFactors(
        gemm_phase_s=tuple(phases),
        gemm_wait_cycles=tuple(waits),
        a2a_bw=jnp.asarray(1.0),
        reticle_bw=jnp.asarray(eta_reticle),
    )


def stream_times(groups, factors: NetworkFactors):
    """Per-GEMM times under ``factors``, per group: ``[(t_gemm, t_alone), ...]``.

    ``t_alone = phase + lat0 + hops x cycle x wait`` is the stream's own time; ``t_gemm`` is
    the GEMM's: ``t_alone`` when the stream overlaps compute (the phase already covers it),
    ``t_compute + t_alone`` when it follows, ``t_compute`` without traffic.
    """
    out = []
    for s, phase, wait in zip(groups, factors.gemm_phase_s, factors.gemm_wait_cycles, strict=True):
        has = s.t_bw_s > 0
        t_alone = phase + s.lat0_s + s.hops * s.cycle_s * wait
        t_gemm = jnp.where(has, jnp.where(s.overlap > 0, t_alone, s.t_comp_s + t_alone), s.t_comp_s)
        out.append((t_gemm, jnp.where(has, t_alone, 0.0)))
    return out
