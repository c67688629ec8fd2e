r"""A cycle-level 2-D mesh network-on-chip simulator in JAX (the F1 fidelity's core).

Input-queued routers with virtual channels and credit-based flow control, wormhole switching
of multi-flit packets, dimension-order (XY) routing, separable round-robin (single-iteration,
input-first) VC and switch allocation, a configurable router pipeline (routing, VC
allocation, switch allocation, switch traversal) and link delay, and a second class of
links (reticle crossings) with their own delay. Ports: 0 = +x, 1 = -x, 2 = +y, 3 = -y,
4 = local (injection / ejection).

One cycle is a fixed set of array operations over all routers (no Python loop over
routers); :func:`make_mesh_sim` returns ``(init, step)`` and :func:`run` scans ``step``
over cycles with ``lax.scan``. Buffers have fixed capacity; a full source queue sets the
``overflow`` flag instead of growing. This module holds the router state
(:class:`SimState`) and the cycle step; the configuration, mesh geometry and offered
traffic (:class:`MeshConfig`, :class:`TrafficMatrix`, the patterns) are :mod:`._config`.

Simplifications (stated, not hidden): a VC holds the flits of one packet at a time (true in
an IQ router that reallocates a VC only after the tail's credit returns, BookSim's
``wait_for_tail_credit = 1``); a free output VC is granted to at most one input VC per
cycle per output port (a separable input-first allocator: each input port forwards one
head's request, each output port grants one); ejection is never blocked (infinite sink).

References:
    Dally & Towles, "Principles and Practices of Interconnection Networks" (2004), ch. 16-19;
    Jiang et al., "A detailed and flexible cycle-accurate network-on-chip simulator"
    (BookSim2), ISPASS 2013.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._config import (
    LOCAL,
    OPP,
    PATTERNS,
    REC_BIT,
    TIME_MASK,
    E,
    MeshConfig,
    N,
    S,
    TrafficMatrix,
    W,
    _crossing,
    _neighbors,
    destinations,
)

__all__ = ["MeshConfig", "SimState", "TrafficMatrix", "make_mesh_sim", "run", "PATTERNS"]


class SimState(NamedTuple):
    """Explicit simulator state (all arrays; shapes fixed by :class:`MeshConfig`)."""

    now: jnp.ndarray
    # input VCs [N, 5, V]
    cnt: jnp.ndarray
    active: jnp.ndarray
    dest: jnp.ndarray
    src: jnp.ndarray
    ctime: jnp.ndarray
    sent: jnp.ndarray
    last_arr: jnp.ndarray
    route: jnp.ndarray
    va_ready: jnp.ndarray
    ovc: jnp.ndarray
    sa_ready: jnp.ndarray
    # output VCs [N, 5, V]
    credits: jnp.ndarray
    ovc_busy: jnp.ndarray
    ovc_tail_sent: jnp.ndarray
    # round-robin pointers
    va_ptr: jnp.ndarray  # [N, 5] output arbiters of VC allocation
    va_in_ptr: jnp.ndarray  # [N, 5] input arbiters of VC allocation
    sa_in_ptr: jnp.ndarray  # [N, 5]
    sa_out_ptr: jnp.ndarray  # [N, 5]
    d2d_busy_until: jnp.ndarray  # [N, 4] crossing links: next cycle they accept a flit
    # pipelines: link [D, N, 4, 7] (valid, vc, dest, src, ctime, head, tail), eject [D, N, 4]
    link: jnp.ndarray
    eject: jnp.ndarray
    credit: jnp.ndarray  # [D, N, 4, V]
    # source queues [N, Q]
    q_dest: jnp.ndarray
    q_ctime: jnp.ndarray
    q_head: jnp.ndarray
    q_count: jnp.ndarray
    inj_vc: jnp.ndarray
    inj_sent: jnp.ndarray
    # statistics
    overflow: jnp.ndarray
    injected_flits: jnp.ndarray  # [N] flits generated
    ejected_flits: jnp.ndarray  # [N] flits delivered, by destination
    win_lat_sum: jnp.ndarray
    win_pkts: jnp.ndarray
    win_ejected: jnp.ndarray  # [N] flits of window packets delivered, by source
    win_created: jnp.ndarray  # packets created inside the window
    all_lat_sum: jnp.ndarray  # latency sum of every delivered packet
    all_pkts: jnp.ndarray  # every delivered packet
    pre_gen: jnp.ndarray  # packets generated before the window's end
    pre_done: jnp.ndarray  # packets generated before the window's end and delivered
    head_marked: jnp.ndarray  # [N] the source queue's head packet got its measured mark
    acc_flits: jnp.ndarray  # [N] flits delivered during the window, by source
    max_wait: jnp.ndarray


def make_mesh_sim(cfg: MeshConfig):
    """Return ``(init, step)``: ``state = init()``; ``state = step(state, key, rate, window)``.

    ``rate`` is the offered load in flits per node per cycle (Bernoulli packet arrivals with
    probability ``rate / packet_size``), or, with ``pattern="matrix"``, a
    :class:`TrafficMatrix` (per-source rates and destinations); ``window = (start, end)``
    are the cycles whose
    created packets are measured.
    """
    n, V, B, P = cfg.n, cfg.n_vcs, cfg.buf_depth, 5
    nb = jnp.asarray(_neighbors(cfg.kx, cfg.ky))
    has_nb = nb >= 0
    nb_safe = jnp.where(has_nb, nb, 0)
    opp = jnp.asarray(OPP)
    cross = jnp.asarray(_crossing(cfg))
    node = jnp.arange(n)
    nx, ny = node % cfg.kx, node // cfg.kx
    vid = jnp.arange(V)

    def init() -> SimState:
        z3 = jnp.zeros((n, P, V), jnp.int32)
        return SimState(
            now=jnp.int32(0),
            cnt=z3,
            active=jnp.zeros((n, P, V), bool),
            dest=z3,
            src=z3,
            ctime=z3,
            sent=z3,
            last_arr=z3 - 1,
            route=z3 - 1,
            va_ready=z3,
            ovc=z3 - 1,
            sa_ready=z3,
            credits=jnp.full((n, P, V), B, jnp.int32),
            ovc_busy=jnp.zeros((n, P, V), bool),
            ovc_tail_sent=jnp.zeros((n, P, V), bool),
            va_ptr=jnp.zeros((n, P), jnp.int32),
            va_in_ptr=jnp.zeros((n, P), jnp.int32),
            sa_in_ptr=jnp.zeros((n, P), jnp.int32),
            sa_out_ptr=jnp.zeros((n, P), jnp.int32),
            d2d_busy_until=jnp.zeros((n, 4), jnp.int32),
            link=jnp.zeros((cfg.link_pipe, n, 4, 7), jnp.int32),
            eject=jnp.zeros((cfg.eject_pipe, n, 4), jnp.int32),
            credit=jnp.zeros((cfg.credit_pipe, n, 4, V), jnp.int32),
            q_dest=jnp.zeros((n, cfg.queue_cap), jnp.int32),
            q_ctime=jnp.zeros((n, cfg.queue_cap), jnp.int32),
            q_head=jnp.zeros(n, jnp.int32),
            q_count=jnp.zeros(n, jnp.int32),
            inj_vc=jnp.full(n, -1, jnp.int32),
            inj_sent=jnp.zeros(n, jnp.int32),
            overflow=jnp.array(False),
            injected_flits=jnp.zeros(n, jnp.int32),
            ejected_flits=jnp.zeros(n, jnp.int32),
            win_lat_sum=jnp.float32(0.0),
            win_pkts=jnp.int32(0),
            win_ejected=jnp.zeros(n, jnp.int32),
            win_created=jnp.int32(0),
            all_lat_sum=jnp.float32(0.0),
            all_pkts=jnp.int32(0),
            pre_gen=jnp.int32(0),
            pre_done=jnp.int32(0),
            head_marked=jnp.zeros(n, bool),
            acc_flits=jnp.zeros(n, jnp.int32),
            max_wait=jnp.int32(0),
        )

    def _write_flit(s, port_mask, vc, dest, src, ctime, head, tail, now):
        """Write one flit per (node, port) where ``port_mask`` into VC ``vc``."""
        onehot = port_mask[..., None] & (vid[None, None, :] == vc[..., None])  # [n, P, V]
        newpk = onehot & (head[..., None] > 0)
        rc = _xy_route(dest)
        return s._replace(
            cnt=s.cnt + onehot.astype(jnp.int32),
            last_arr=jnp.where(onehot, now, s.last_arr),
            active=s.active | newpk,
            dest=jnp.where(newpk, dest[..., None], s.dest),
            src=jnp.where(newpk, src[..., None], s.src),
            ctime=jnp.where(newpk, ctime[..., None], s.ctime),
            sent=jnp.where(newpk, 0, s.sent),
            route=jnp.where(newpk, rc[..., None], s.route),
            va_ready=jnp.where(newpk, now + cfg.routing_delay, s.va_ready),
        )

    def _xy_route(dest):
        # broadcast over [n, P]: this router's coordinates vs the destination's
        dx = dest % cfg.kx - nx[:, None]
        dy = dest // cfg.kx - ny[:, None]
        return jnp.where(
            dx > 0, E, jnp.where(dx < 0, W, jnp.where(dy > 0, N, jnp.where(dy < 0, S, LOCAL)))
        ).astype(jnp.int32)

    def step(s: SimState, key, rate, window) -> SimState:
        if (cfg.pattern == "matrix") != isinstance(rate, TrafficMatrix):
            raise TypeError(
                'pattern="matrix" takes a TrafficMatrix as its rate and the other patterns a '
                f"scalar load; got pattern={cfg.pattern!r} and {type(rate).__name__}"
            )
        now = s.now
        w0, w1 = window
        ej = s.eject[0]  # flits leaving the ejection pipeline this cycle
        # ---- A: link arrivals (input port p of node m is fed by output opp[p] of nb[m,p]) --
        arr = s.link[0]  # [n, 4, 7] at the sender
        inc = arr[nb_safe, opp[:4][None, :]]  # [n, 4, 7] seen by the receiver's port
        valid = (inc[..., 0] > 0) & has_nb
        pad = lambda a: jnp.concatenate([a, jnp.zeros((n, 1), a.dtype)], axis=1)  # noqa: E731
        s = _write_flit(
            s,
            pad(valid),
            pad(inc[..., 1]),
            pad(inc[..., 2]),
            pad(inc[..., 3]),
            pad(inc[..., 4]),
            pad(inc[..., 5]),
            pad(inc[..., 6]),
            now,
        )
        # ---- B: credits arriving at the upstream output VCs ----------------------------------
        cr = jnp.concatenate([s.credit[0], jnp.zeros((n, 1, V), jnp.int32)], axis=1)
        credits = s.credits + cr

        # ---- D: VC allocation (separable, input-first: each input port forwards one head's
        # request, each output port grants one input port a free VC per cycle) -------------
        front_head = s.active & (s.sent == 0) & (s.cnt > 0)
        free = ~s.ovc_busy  # [n, o, V]
        has_free = jnp.any(free, axis=-1) | (jnp.arange(P) == LOCAL)[None, :]
        free_at_route = jnp.take_along_axis(
            has_free, jnp.clip(s.route, 0, P - 1).reshape(n, P * V), axis=1
        ).reshape(n, P, V)
        # an input VC requests only when its output port has a free VC (BookSim's VA sees
        # only available output VCs)
        want_vc = front_head & (s.ovc < 0) & (now >= s.va_ready) & free_at_route
        vrot_va = (vid[None, None, :] - s.va_in_ptr[:, :, None]) % V
        va_v = jnp.argmin(jnp.where(want_vc, vrot_va, V + vrot_va), axis=-1)  # [n, P]
        va_req = jnp.any(want_vc, axis=-1)
        va_o = jnp.take_along_axis(s.route, va_v[..., None], axis=-1)[..., 0]  # [n, P]
        oreq = (
            va_req[:, None, :]
            & (va_o[:, None, :] == jnp.arange(P)[None, :, None])
            & has_free[..., None]
        )  # [n, o, p]
        prot_va = (jnp.arange(P)[None, None, :] - s.va_ptr[:, :, None]) % P
        va_p = jnp.argmin(jnp.where(oreq, prot_va, P + prot_va), axis=-1)  # [n, o]
        o_grant = jnp.any(oreq, axis=-1)
        first_free = jnp.argmax(free, axis=-1)  # lowest free VC  [n, o]
        first_free = jnp.where(jnp.arange(P)[None, :] == LOCAL, 0, first_free)
        # back to the inputs: input port p of node n won output o
        won = o_grant[:, :, None] & (va_p[:, :, None] == jnp.arange(P)[None, None, :])  # [n,o,p]
        got_p = jnp.any(won, axis=1)  # [n, p]
        got_vc = jnp.sum(jnp.where(won, first_free[:, :, None], 0), axis=1)  # [n, p]
        got = got_p[..., None] & (vid[None, None, :] == va_v[..., None])  # [n, P, V]
        ovc = jnp.where(got, got_vc[..., None], s.ovc)
        sa_ready = jnp.where(got, now + cfg.vc_alloc_delay, s.sa_ready)
        busy_add = o_grant[..., None] & (vid[None, None, :] == first_free[..., None])
        busy_add = busy_add.at[:, LOCAL, :].set(False)
        ovc_busy = s.ovc_busy | busy_add
        ovc_tail_sent = s.ovc_tail_sent & ~busy_add
        va_ptr = jnp.where(o_grant, (va_p + 1) % P, s.va_ptr)
        va_in_ptr = jnp.where(got_p, (va_v + 1) % V, s.va_in_ptr)

        # ---- E: switch allocation (input arbiter over VCs, output arbiter over ports) --------
        ready_front = (s.cnt >= 2) | ((s.cnt == 1) & (s.last_arr < now))
        out_p = s.route
        ov = jnp.clip(ovc, 0, V - 1)
        cred_at = credits[node[:, None, None], jnp.clip(out_p, 0, P - 1), ov]  # [n, P, V]
        link_free = jnp.concatenate(
            [
                ~cross | (s.d2d_busy_until <= now),
                jnp.ones((n, 1), bool),
            ],
            axis=1,
        )  # [n, o]
        lf_at = link_free[node[:, None, None], jnp.clip(out_p, 0, P - 1)]
        elig = (
            s.active
            & (ovc >= 0)
            & (now >= sa_ready)
            & ready_front
            & ((out_p == LOCAL) | (cred_at > 0))
            & lf_at
        )
        vrot = (vid[None, None, :] - s.sa_in_ptr[:, :, None]) % V
        pick_v = jnp.argmin(jnp.where(elig, vrot, V + vrot), axis=-1)  # [n, P]
        in_req = jnp.any(elig, axis=-1)
        in_out = jnp.take_along_axis(out_p, pick_v[..., None], axis=-1)[..., 0]  # [n, P]
        preq = in_req[:, None, :] & (in_out[:, None, :] == jnp.arange(P)[None, :, None])  # [n,o,p]
        prot = (jnp.arange(P)[None, None, :] - s.sa_out_ptr[:, :, None]) % P
        pick_p = jnp.argmin(jnp.where(preq, prot, P + prot), axis=-1)  # [n, o]
        out_grant = jnp.any(preq, axis=-1)
        win_in = jnp.zeros((n, P), bool).at[node[:, None], pick_p].max(out_grant)  # [n, p]
        sa_in_ptr = jnp.where(win_in, (pick_v + 1) % V, s.sa_in_ptr)
        sa_out_ptr = jnp.where(out_grant, (pick_p + 1) % P, s.sa_out_ptr)
        win = win_in[..., None] & (vid[None, None, :] == pick_v[..., None])  # [n, P, V]

        # ---- F: switch traversal ---------------------------------------------------------------
        is_head = win & (s.sent == 0)
        is_tail = win & (s.sent == cfg.packet_size - 1)
        cnt = s.cnt - win.astype(jnp.int32)
        sent = s.sent + win.astype(jnp.int32)
        # per (n, p): the winning flit's fields
        sel = lambda a: jnp.sum(jnp.where(win, a, 0), axis=-1)  # noqa: E731
        f_o, f_ovc = sel(out_p), sel(ovc)
        f_dest, f_src, f_ct = sel(s.dest), sel(s.src), sel(s.ctime)
        f_head = jnp.any(is_head, -1).astype(jnp.int32)
        f_tail = jnp.any(is_tail, -1).astype(jnp.int32)
        # scatter to output ports: at most one input per output won
        to_o = win_in[:, :, None] & (f_o[:, :, None] == jnp.arange(P)[None, None, :])  # [n,p,o]
        pick = lambda a: jnp.sum(jnp.where(to_o, a[:, :, None], 0), axis=1)  # noqa: E731
        o_valid = jnp.any(to_o, axis=1)  # [n, o]
        rec = jnp.stack(
            [
                o_valid.astype(jnp.int32),
                pick(f_ovc),
                pick(f_dest),
                pick(f_src),
                pick(f_ct),
                pick(f_head),
                pick(f_tail),
            ],
            axis=-1,
        )  # [n, o, 7]
        link = jnp.concatenate([s.link[1:], rec[None, :, :4]], axis=0)
        ej_rec = jnp.stack(
            [rec[:, LOCAL, 0], rec[:, LOCAL, 3], rec[:, LOCAL, 4], rec[:, LOCAL, 6]], axis=-1
        )
        eject = jnp.concatenate([s.eject[1:], ej_rec[None]], axis=0)
        used = (o_valid[..., None] & (vid[None, None, :] == pick(f_ovc)[..., None])).astype(
            jnp.int32
        )
        credits = credits - used.at[:, LOCAL].set(0)
        d2d_busy_until = jnp.where(o_valid[:, :4] & cross, now + cfg.d2d_period, s.d2d_busy_until)
        # credits to the upstream router for the freed input slot (ports 0-3)
        freed = win[:, :4, :].astype(jnp.int32)  # [n, p, V] at the receiver
        up = freed[nb_safe, opp[:4][None, :]] * has_nb[..., None]  # [m, o, V] at the sender
        credit = jnp.concatenate([s.credit[1:], up[None]], axis=0)
        # tails free the input VC and mark the output VC for release
        tail_o = jnp.any(to_o & (f_tail[:, :, None] > 0), axis=1)  # [n, o]
        tail_vc = tail_o[..., None] & (vid[None, None, :] == pick(f_ovc)[..., None])
        ovc_tail_sent = ovc_tail_sent | tail_vc
        release = ovc_tail_sent & (credits >= B)
        ovc_busy = ovc_busy & ~release
        ovc_tail_sent = ovc_tail_sent & ~release
        active = s.active & ~is_tail
        route = jnp.where(is_tail, -1, s.route)
        ovc = jnp.where(is_tail, -1, ovc)
        s = s._replace(
            cnt=cnt,
            sent=sent,
            active=active,
            route=route,
            ovc=ovc,
            sa_ready=sa_ready,
            credits=credits,
            ovc_busy=ovc_busy,
            ovc_tail_sent=ovc_tail_sent,
            va_ptr=va_ptr,
            va_in_ptr=va_in_ptr,
            sa_in_ptr=sa_in_ptr,
            sa_out_ptr=sa_out_ptr,
            d2d_busy_until=d2d_busy_until,
            link=link,
            credit=credit,
            eject=eject,
        )

        # ---- G: sink (ejection pipeline output) ------------------------------------------------
        ev, esrc, etail = ej[:, 0] > 0, ej[:, 1], ej[:, 3] > 0
        ect, in_win = ej[:, 2] & TIME_MASK, (ej[:, 2] & REC_BIT) > 0
        lat = (now - ect).astype(jnp.float32)
        done = ev & etail & in_win
        done_all = ev & etail
        ejected_flits = s.ejected_flits + ev.astype(jnp.int32)
        win_ejected = s.win_ejected.at[esrc].add((ev & in_win).astype(jnp.int32))
        in_meas = (now >= w0) & (now < w1)
        acc = s.acc_flits.at[esrc].add((ev & in_meas).astype(jnp.int32))

        # ---- H: traffic generation into the source queues --------------------------------------
        k1, k2 = jax.random.split(key)
        if isinstance(rate, TrafficMatrix):
            gen = jax.random.uniform(k1, (n,)) < rate.rate / cfg.packet_size
            d = destinations(cfg, k2, node, rate)
        else:
            gen = jax.random.uniform(k1, (n,)) < rate / cfg.packet_size
            d = destinations(cfg, k2, node)
        full = s.q_count >= cfg.queue_cap
        put = gen & ~full
        tail_pos = (s.q_head + s.q_count) % cfg.queue_cap
        q_dest = s.q_dest.at[node, tail_pos].set(jnp.where(put, d, s.q_dest[node, tail_pos]))
        q_ctime = s.q_ctime.at[node, tail_pos].set(jnp.where(put, now, s.q_ctime[node, tail_pos]))
        q_count = s.q_count + put.astype(jnp.int32)
        win_created = s.win_created + jnp.sum(put & in_meas).astype(jnp.int32)
        # BookSim creates a packet (and decides whether it is measured) when it reaches the
        # head of its source queue: measured iff created at or after the window's start and
        # stamped before its end (with source queueing included in the stamp)
        hd_raw = q_ctime[node, s.q_head]
        mark = (q_count > 0) & ~s.head_marked
        rec = mark & (now >= w0) & (hd_raw < w1)
        q_ctime = q_ctime.at[node, s.q_head].set(jnp.where(rec, hd_raw | REC_BIT, hd_raw))
        head_marked = s.head_marked | mark
        # ---- I: injection of one flit per cycle into a local input VC ---------------------------
        local_free = ~s.active[:, LOCAL, :] & (s.cnt[:, LOCAL, :] == 0)
        first_free = jnp.argmax(local_free, axis=-1)
        start = (s.inj_vc < 0) & (q_count > 0) & jnp.any(local_free, axis=-1)
        inj_vc = jnp.where(start, first_free, s.inj_vc)
        inj_sent = jnp.where(start, 0, s.inj_sent)
        vc_cnt = jnp.take_along_axis(s.cnt[:, LOCAL, :], jnp.clip(inj_vc, 0)[:, None], 1)[:, 0]
        can = (inj_vc >= 0) & (q_count > 0) & (vc_cnt < B)
        hd_dest = q_dest[node, s.q_head]
        hd_ct = q_ctime[node, s.q_head]
        f_head = (inj_sent == 0).astype(jnp.int32)
        f_tail = (inj_sent == cfg.packet_size - 1).astype(jnp.int32)
        port_mask = jnp.zeros((n, P), bool).at[:, LOCAL].set(can)
        b = lambda a: jnp.broadcast_to(a[:, None], (n, P))  # noqa: E731
        s = _write_flit(
            s,
            port_mask,
            b(inj_vc),
            b(hd_dest),
            b(node),
            b(hd_ct),
            b(f_head),
            b(f_tail),
            now + cfg.inject_delay,
        )
        inj_sent = inj_sent + can.astype(jnp.int32)
        fin = can & (inj_sent >= cfg.packet_size)
        q_head = jnp.where(fin, (s.q_head + 1) % cfg.queue_cap, s.q_head)
        q_count = q_count - fin.astype(jnp.int32)
        head_marked = head_marked & ~fin
        inj_vc = jnp.where(fin, -1, inj_vc)
        inj_sent = jnp.where(fin, 0, inj_sent)
        return s._replace(
            now=now + 1,
            q_dest=q_dest,
            q_ctime=q_ctime,
            q_head=q_head,
            q_count=q_count,
            inj_vc=inj_vc,
            inj_sent=inj_sent,
            overflow=s.overflow | jnp.any(gen & full),
            injected_flits=s.injected_flits + cfg.packet_size * put.astype(jnp.int32),
            ejected_flits=ejected_flits,
            win_lat_sum=s.win_lat_sum + jnp.sum(jnp.where(done, lat, 0.0)),
            win_pkts=s.win_pkts + jnp.sum(done).astype(jnp.int32),
            win_ejected=win_ejected,
            win_created=win_created,
            all_lat_sum=s.all_lat_sum + jnp.sum(jnp.where(done_all, lat, 0.0)),
            all_pkts=s.all_pkts + jnp.sum(done_all).astype(jnp.int32),
            pre_gen=s.pre_gen + jnp.sum(put & (now < w1)).astype(jnp.int32),
            pre_done=s.pre_done + jnp.sum(done_all & (ect < w1)).astype(jnp.int32),
            head_marked=head_marked,
            acc_flits=acc,
            max_wait=jnp.maximum(
                s.max_wait, jnp.max(jnp.where(s.q_count > 0, now - (hd_ct & TIME_MASK), 0))
            ),
        )

    return init, step


def run(cfg: MeshConfig, rate, cycles: int, *, key, window=(0, 0), state=None):
    """Simulate ``cycles`` cycles at offered load ``rate`` (flits/node/cycle); returns state.

    Pure and jit-able (``cycles`` and ``cfg`` static); vmap over ``key`` or ``rate`` for
    independent seeds or loads.
    """
    init, step = make_mesh_sim(cfg)
    s0 = init() if state is None else state
    keys = jax.random.split(key, cycles)
    w = (jnp.int32(window[0]), jnp.int32(window[1]))

    def body(s, k):
        return step(s, k, rate, w), None

    s, _ = jax.lax.scan(body, s0, keys)
    return s
