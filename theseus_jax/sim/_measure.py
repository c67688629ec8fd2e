"""BookSim-style measurement: latency, accepted throughput and saturation of a mesh.

Two procedures:

* :class:`BookSimSpec` (the default of the validation script and the CLI) follows BookSim2's
  latency-mode simulation (``TrafficManager::_SingleSim``): warm-up sample periods, then
  sample periods until the average latency and accepted rate change by less than 5 % three
  periods in a row (at most ``max_samples`` periods in all), then a drain until every
  measured packet has been delivered. A packet is measured when it is *created* -- reaches
  the head of its source queue, where BookSim creates packets lazily -- during the
  measurement, and its latency counts from its generation stamp (source queueing included).
  A run is unstable (saturated) when the average latency exceeds the threshold at the end of
  a sample period or, counting the measured flits still in flight at their current age,
  during the drain; or when a source queue overflows or the drain does not finish.
* :class:`MeasureSpec`: fixed warm-up, window and drain lengths (one compiled scan).
"""

from __future__ import annotations

import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ._config import REC_BIT, TIME_MASK, MeshConfig
from ._mesh import make_mesh_sim, run

__all__ = ["measure", "measure_batch", "MeasureSpec", "BookSimSpec"]


class MeasureSpec:
    """Cycle counts of one measurement (BookSim: 3 warm-up sample periods of 1,000 cycles,
    latency threshold 500 cycles). BookSim drains until the measured packets have left; a
    fixed-length scan cannot stop early, so the drain is long (8,000 cycles) and packets
    still undelivered after it are left out of the average, as BookSim's note describes."""

    def __init__(self, warmup=3000, window=3000, drain=8000, latency_threshold=500.0):
        if min(warmup, window, drain) < 0 or window == 0:
            raise ValueError("warmup, window and drain must be >= 0 cycles and window > 0")
        self.warmup, self.window, self.drain = int(warmup), int(window), int(drain)
        self.latency_threshold = float(latency_threshold)

    @property
    def cycles(self) -> int:
        return self.warmup + self.window + self.drain


@partial(jax.jit, static_argnums=(0, 2, 3))
def _sim(cfg: MeshConfig, rate, cycles: int, window: tuple, key):
    return run(cfg, rate, cycles, key=key, window=window)


def _summarise(cfg, spec, s, rate):
    n = cfg.n
    pkts = int(s.win_pkts)
    created = int(s.win_created)
    lat = float(s.win_lat_sum) / max(pkts, 1)
    accepted = float(np.sum(np.asarray(s.acc_flits))) / (n * spec.window)
    # BookSim's criterion: the average latency of the delivered measured packets against
    # the threshold (undelivered packets do not enter the average). The latency including
    # the packets still waiting in source queues is reported beside it.
    q = cfg.queue_cap
    pos = (np.arange(q)[None, :] - np.asarray(s.q_head)[:, None]) % q
    queued = pos < np.asarray(s.q_count)[:, None]
    ct = np.asarray(s.q_ctime) & TIME_MASK
    w0, w1 = spec.warmup, spec.warmup + spec.window
    waiting = queued & (ct >= w0) & (ct < w1)
    age_sum = float(np.sum(np.where(waiting, int(s.now) - ct, 0)))
    n_wait = int(np.sum(waiting))
    lat_all = (float(s.win_lat_sum) + age_sum) / max(pkts + n_wait, 1)
    stable = pkts > 0 and lat <= spec.latency_threshold and not bool(s.overflow)
    per_src = np.asarray(s.acc_flits) / spec.window
    return {
        "rate": float(rate),
        "avg_latency": lat if pkts else float("nan"),
        "accepted_rate": accepted,
        "per_source_accepted_min": float(per_src.min()),
        "per_source_accepted_max": float(per_src.max()),
        "stable": bool(stable),
        "latency_incl_waiting": lat_all,
        "packets_measured": pkts,
        "packets_created": created,
        "overflow": bool(s.overflow),
        "injected_flits": int(np.sum(np.asarray(s.injected_flits))),
        "ejected_flits": int(np.sum(np.asarray(s.ejected_flits))),
        "in_flight_flits": int(np.sum(np.asarray(s.cnt)))
        + int(np.sum(np.asarray(s.link[..., 0]) > 0))
        + int(np.sum(np.asarray(s.eject[..., 0]) > 0)),
        "queued_flits": int(
            np.sum(np.asarray(s.q_count)) * cfg.packet_size - np.sum(np.asarray(s.inj_sent))
        ),
        "cycles": spec.cycles,
    }


def measure(cfg: MeshConfig, rate: float, *, seed: int = 0, spec: MeasureSpec | None = None):
    """Average packet latency and accepted throughput at one offered load (a dict)."""
    spec = spec or MeasureSpec()
    if isinstance(spec, BookSimSpec):
        return _measure_booksim(cfg, [rate], seed, spec)[0]
    w = (spec.warmup, spec.warmup + spec.window)
    t = time.perf_counter()
    s = _sim(cfg, jnp.float32(rate), spec.cycles, w, jax.random.PRNGKey(seed))
    jax.block_until_ready(s.now)
    out = _summarise(cfg, spec, s, rate)
    out["wall_s"] = time.perf_counter() - t
    return out


def measure_batch(
    cfg: MeshConfig, rates, *, seed: int = 0, spec: MeasureSpec | None = None, traffic=None
):
    """:func:`measure` at several loads in one vmapped call (one compile).

    With ``cfg.pattern == "matrix"``, ``traffic`` is a :class:`~theseus_jax.sim.TrafficMatrix`
    and ``rates`` are factors on its rates (1 = the flows as given); ``accepted_rate`` and
    ``offered_rate`` are then flits/cycle averaged over all routers.
    """
    spec = spec or MeasureSpec()
    if (cfg.pattern == "matrix") != (traffic is not None):
        raise ValueError('pass traffic=TrafficMatrix(...) exactly when pattern="matrix"')
    if isinstance(spec, BookSimSpec):
        outs = _measure_booksim(cfg, rates, seed, spec, traffic)
    else:
        outs = _measure_fixed(cfg, rates, seed, spec, traffic)
    if traffic is not None:
        mean_rate = float(np.mean(np.asarray(traffic.rate)))
        for o in outs:
            o["offered_rate"] = o["rate"] * mean_rate
    return outs


def _measure_fixed(cfg: MeshConfig, rates, seed: int, spec: MeasureSpec, traffic):
    w = (spec.warmup, spec.warmup + spec.window)
    rates = jnp.asarray(rates, jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(seed), rates.shape[0])
    f = jax.jit(
        jax.vmap(
            lambda r, k, tm: run(cfg, _offered(cfg, r, tm), spec.cycles, key=k, window=w),
            in_axes=(0, 0, None),
        )
    )
    t = time.perf_counter()
    st = f(rates, keys, traffic)
    jax.block_until_ready(st.now)
    wall = time.perf_counter() - t
    outs = []
    for i in range(rates.shape[0]):
        si = jax.tree_util.tree_map(lambda x: x[i], st)  # noqa: B023
        o = _summarise(cfg, spec, si, float(rates[i]))
        o["wall_s"] = wall / rates.shape[0]
        outs.append(o)
    return outs


class BookSimSpec:
    """BookSim2's latency-mode measurement (defaults = BookSim2's defaults).

    Args:
        warmup_periods: sample periods of warm-up (BookSim ``warmup_periods = 3``).
        sample_period: cycles per sample period (``sample_period = 1000``).
        max_samples: sample periods in all, warm-up included (``max_samples = 10``).
        latency_threshold: average latency (cycles) beyond which a run is unstable
            (``latency_thres = 500``).
        stopping_threshold, acc_stopping_threshold: relative change of the average latency
            and of the accepted rate between consecutive periods that counts as converged
            (``stopping_thres = acc_stopping_thres = 0.05``); three converged periods in a
            row end the measurement.
        max_cycles: cap on the whole run (warm-up, samples and drain); a drain that has not
            finished by then is reported unstable.

    References:
        BookSim2 ``src/trafficmanager.cpp`` (``_SingleSim``, ``_GeneratePacket``,
        ``_RetireFlit``) and ``src/booksim_config.cpp`` (defaults); Jiang et al., ISPASS 2013.
    """

    def __init__(
        self,
        warmup_periods=3,
        sample_period=1000,
        max_samples=10,
        latency_threshold=500.0,
        stopping_threshold=0.05,
        acc_stopping_threshold=0.05,
        max_cycles=60000,
    ):
        if warmup_periods < 0 or sample_period < 1 or max_samples <= warmup_periods:
            raise ValueError(
                "need warmup_periods >= 0, sample_period >= 1 and max_samples > warmup_periods"
            )
        if max_cycles < max_samples * sample_period:
            raise ValueError(
                f"max_cycles ({max_cycles}) must cover max_samples x sample_period "
                f"({max_samples * sample_period}); raise max_cycles"
            )
        self.warmup_periods, self.sample_period = int(warmup_periods), int(sample_period)
        self.max_samples, self.max_cycles = int(max_samples), int(max_cycles)
        self.latency_threshold = float(latency_threshold)
        self.stopping_threshold = float(stopping_threshold)
        self.acc_stopping_threshold = float(acc_stopping_threshold)


def _offered(cfg: MeshConfig, r, traffic):
    """The simulator's rate argument: a scalar load, or ``traffic`` scaled by ``r``."""
    return r if traffic is None else traffic.scaled(r)


@partial(jax.jit, static_argnames=("cfg", "period"))
def _booksim_batch(s, r, kk, w0, w1, tm, *, cfg: MeshConfig, period: int):
    """One sample period of ``k`` independent runs (leading axis of ``s, r, kk, w0, w1``).

    The mesh configuration and the period are static, so jax's own compilation cache holds
    one executable per (configuration, period, batch size): no cache of ours."""

    def one(s, r, kk, w0, w1):
        return run(cfg, _offered(cfg, r, tm), period, key=kk, window=(w0, w1), state=s)

    return jax.vmap(one)(s, r, kk, w0, w1)


def _in_flight_ages(cfg: MeshConfig, s, now: int) -> tuple[float, int]:
    """Sum of ages and count of the measured flits in flight (BookSim's drain check counts
    the flits of created packets: in the network and in the head packet at the source)."""
    ps = cfg.packet_size

    def ages(field, count):
        f = np.asarray(field)
        m = (f & REC_BIT) > 0
        c = np.where(m, np.asarray(count), 0)
        return float(np.sum(c * (now - (f & TIME_MASK)))), int(np.sum(c))

    a1, c1 = ages(s.ctime, s.cnt)
    a2, c2 = ages(s.link[..., 4], s.link[..., 0] > 0)
    a3, c3 = ages(s.eject[..., 2], s.eject[..., 0] > 0)
    n = cfg.n
    head = np.asarray(s.q_ctime)[np.arange(n), np.asarray(s.q_head)]
    left = np.where(np.asarray(s.q_count) > 0, ps - np.asarray(s.inj_sent), 0)
    a4, c4 = ages(head, left)
    return a1 + a2 + a3 + a4, c1 + c2 + c3 + c4


def _measure_booksim(cfg: MeshConfig, rates, seed: int, spec: BookSimSpec, traffic=None):
    rates = np.asarray(rates, np.float32).reshape(-1)
    k = rates.shape[0]
    per = spec.sample_period
    fn = partial(_booksim_batch, cfg=cfg, period=per)
    init = make_mesh_sim(cfg)[0]
    st = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (k,) + x.shape), init())
    big = np.int32(TIME_MASK)
    w0 = np.full(k, spec.warmup_periods * per, np.int32)
    w1 = np.full(k, big, np.int32)
    base = jax.random.PRNGKey(seed)
    keys = jax.random.split(base, k)
    # host-side procedure state per run
    phase = np.zeros(k, int)  # sample periods done
    state = np.array(["warm"] * k, dtype=object)
    converged = np.zeros(k, int)
    prev_lat = np.zeros(k)
    prev_acc = np.zeros(k)
    snap = {}  # per run: values at the last statistics reset
    end = {}
    t0 = time.perf_counter()
    cycles = 0
    n = cfg.n
    while True:
        active = [i for i in range(k) if state[i] in ("warm", "run", "drain")]
        if not active or cycles >= spec.max_cycles:
            break
        ck = jax.vmap(lambda kk, c=cycles: jax.random.fold_in(kk, c))(keys)
        st = fn(st, jnp.asarray(rates), ck, jnp.asarray(w0), jnp.asarray(w1), traffic)
        cycles += per
        h = jax.device_get(
            (
                st.win_lat_sum,
                st.win_pkts,
                st.all_lat_sum,
                st.all_pkts,
                st.ejected_flits,
                st.pre_gen,
                st.pre_done,
                st.overflow,
            )
        )
        lat_sum, pkts, all_sum, all_pk, ej, pre_gen, pre_done, ovf = h
        ej = np.asarray(ej).sum(axis=-1)
        for i in active:
            if ovf[i]:
                state[i], end[i] = "unstable", (cycles, "source queue overflow")
                continue
            if state[i] in ("warm", "run"):
                phase[i] += 1
                if state[i] == "warm":
                    # BookSim clears its statistics at even warm-up periods; warm-up periods
                    # record every delivered packet
                    if (phase[i] - 1) % 2 == 0:
                        snap[i] = (all_sum[i], all_pk[i], ej[i], cycles - per)
                    s_sum, s_pk, s_ej, s_t = snap[i]
                    npk = all_pk[i] - s_pk
                    cur_lat = (all_sum[i] - s_sum) / npk if npk else 0.0
                else:
                    s_ej, s_t = snap[i][2], snap[i][3]
                    cur_lat = lat_sum[i] / pkts[i] if pkts[i] else 0.0
                cur_acc = (ej[i] - s_ej) / (n * (cycles - s_t))
                if cur_lat > spec.latency_threshold:
                    state[i], end[i] = "unstable", (cycles, "latency threshold")
                    continue
                dl = abs(cur_lat - prev_lat[i]) / cur_lat if cur_lat else np.inf
                da = abs(cur_acc - prev_acc[i]) / cur_acc if cur_acc else np.inf
                if state[i] == "warm":
                    if phase[i] >= spec.warmup_periods:
                        state[i] = "run"
                        snap[i] = (all_sum[i], all_pk[i], ej[i], cycles)
                else:
                    ok = dl < spec.stopping_threshold and da < spec.acc_stopping_threshold
                    converged[i] = converged[i] + 1 if ok else 0
                prev_lat[i], prev_acc[i] = cur_lat, cur_acc
                if state[i] == "run" and (converged[i] >= 3 or phase[i] >= spec.max_samples):
                    state[i] = "drain"
                    w1[i] = cycles
                    acc = (ej[i] - snap[i][2]) / (n * (cycles - snap[i][3]))
                    end[i] = (cycles, acc)
            elif state[i] == "drain":
                if pre_done[i] >= pre_gen[i]:
                    state[i] = "done"
                    end[i] = (end[i][0], end[i][1], cycles)
                elif (cycles - w1[i]) % 1000 == 0:
                    si = jax.tree_util.tree_map(lambda x, i=i: x[i], st)
                    age, cnt = _in_flight_ages(cfg, si, cycles)
                    avg = (float(lat_sum[i]) + age) / max(int(pkts[i]) + cnt, 1)
                    if avg > spec.latency_threshold:
                        state[i] = "unstable"
                        end[i] = (cycles, "latency threshold during drain")
    wall = time.perf_counter() - t0
    lat_sum, pkts, ovf = jax.device_get((st.win_lat_sum, st.win_pkts, st.overflow))
    outs = []
    for i in range(k):
        stable = state[i] == "done"
        why = ""
        if state[i] in ("warm", "run", "drain"):
            why = f"not drained after {spec.max_cycles} cycles"
        elif state[i] == "unstable":
            why = end[i][1]
        lat = float(lat_sum[i]) / int(pkts[i]) if (stable and pkts[i]) else float("nan")
        outs.append(
            {
                "rate": float(rates[i]),
                "avg_latency": lat,
                "accepted_rate": float(end[i][1]) if stable else float("nan"),
                "stable": bool(stable),
                "reason": why,
                "packets_measured": int(pkts[i]),
                "overflow": bool(ovf[i]),
                "cycles": int(end[i][2]) if stable else int(end.get(i, (cycles,))[0]),
                "wall_s": wall / k,
            }
        )
    return outs
