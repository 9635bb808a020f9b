import json
from collections import Counter
from decimal import Decimal

import jsonschema
import pytest

from fraud_detection.generator.simulate import TrafficModel
from fraud_detection.ground_truth import ATTACK, DECOY_BELOW_THRESHOLD, DECOY_SLOW
from fraud_detection.rules.velocity import Event, detect
from fraud_detection.transaction import SCHEMA, encode

START_MS = 1_764_338_400_000  # 2025-11-28T14:00:00Z, on a 10-minute boundary
MIN = 60_000


def model(**overrides):
    params = dict(card_space="u1", population=200_000, seed=7, start_ms=START_MS, rate_per_second=200,
                  attack_interval_s=20, decoy_ratio=1.0, slice_ms=1000)
    params.update(overrides)
    return TrafficModel(**params)


def run(m, minutes):
    return run_from(m, START_MS, minutes)


def events_and_truth(m, minutes):
    batches = run(m, minutes)
    events = [Event(c, t, ms, a) for b in batches
              for t, c, a, ms in zip(b.transaction_ids, b.card_ids, b.amount_cents, b.event_times_ms, strict=True)]
    finished = [e for b in batches for e in b.finished_episodes]
    return events, finished, finished + m.cut_open_episodes(m.cursor_ms)


@pytest.fixture(scope="module")
def hour_of_traffic():
    return events_and_truth(model(), 60)


def test_same_seed_same_stream():
    """A seed reproduces the stream exactly; another seed does not."""
    first, second, other = (run(model(seed=s), 5) for s in (7, 7, 8))
    assert [list(b.rows()) for b in first] == [list(b.rows()) for b in second]
    assert [list(b.rows()) for b in first] != [list(b.rows()) for b in other]


def test_rate_is_exact_per_event_second(hour_of_traffic):
    """Legitimate traffic is the configured rate; injected swipes come on top."""
    events, _, truth = hour_of_traffic
    injected = sum(e.txn_count for e in truth)
    assert len(events) - injected == 200 * 3600


def test_attacks_are_exactly_the_oracles_alerts(hour_of_traffic):
    """Every attack trips the rule once with its recorded span and count; nothing else alerts."""
    events, _, truth = hour_of_traffic
    attacks = {(e.card_id, e.first_event_time_ms, e.last_event_time_ms, e.txn_count) for e in truth if e.kind == ATTACK}
    alerts = {(a.card_id, a.first_event_time_ms, a.last_event_time_ms, a.txn_count) for a in detect(events)}
    assert len(attacks) > 100
    assert alerts == attacks


def test_attack_and_decoy_shapes(hour_of_traffic):
    """Attacks: 6-15 swipes, by a bot (1-3 s apart) or spread over 1-10 minutes; decoys: 5 within 10 minutes,
    or 6 over 11+ minutes."""
    _, truth, _ = hour_of_traffic
    kinds = Counter(e.kind for e in truth)
    assert kinds[ATTACK] and kinds[DECOY_BELOW_THRESHOLD] and kinds[DECOY_SLOW]
    for e in truth:
        span = e.last_event_time_ms - e.first_event_time_ms
        if e.kind == ATTACK:
            bot = 1000 * (e.txn_count - 1) <= span <= 3000 * (e.txn_count - 1)
            assert 6 <= e.txn_count <= 15 and (bot or MIN <= span < 10 * MIN)
        elif e.kind == DECOY_BELOW_THRESHOLD:
            assert e.txn_count == 5 and span < 10 * MIN
        else:
            assert e.txn_count == 6 and span >= 11 * MIN


def test_some_attacks_straddle_a_clock_boundary(hour_of_traffic):
    """A good share of attacks crosses a 10-minute clock boundary, which tumbling windows miss."""
    _, truth, _ = hour_of_traffic
    attacks = [e for e in truth if e.kind == ATTACK and e.last_event_time_ms - e.first_event_time_ms >= MIN]
    straddling = [e for e in attacks if e.first_event_time_ms // (10 * MIN) != e.last_event_time_ms // (10 * MIN)]
    assert 0.3 < len(straddling) / len(attacks) < 0.9


def test_the_first_attack_starts_with_the_run_and_crosses_the_threshold_within_seconds(hour_of_traffic):
    """A new run shows a detection at once: its first attack begins at the start, its 6th swipe within 15 s."""
    events, truth, _ = hour_of_traffic
    first = min((e for e in truth if e.kind == ATTACK), key=lambda e: e.first_event_time_ms)
    swipes = sorted(e.event_time_ms for e in events if e.card_id == first.card_id)
    assert swipes[0] == START_MS and swipes[5] - START_MS <= 15_000


def test_attacks_arrive_about_every_attack_interval(hour_of_traffic):
    """About one attack per 20 s of event time (jittered)."""
    _, truth, _ = hour_of_traffic
    assert 150 <= sum(e.kind == ATTACK for e in truth) <= 210


def test_replicas_own_disjoint_card_spaces():
    """Two replicas share no card id and no transaction id."""
    a = {row[:2] for b in run(model(card_space="aaa"), 2) for row in b.rows()}
    b = {row[:2] for b in run(model(card_space="bbb"), 2) for row in b.rows()}
    assert {card for _, card in a}.isdisjoint(card for _, card in b)
    assert {tid for tid, _ in a}.isdisjoint(tid for tid, _ in b)
    assert all(card.startswith("aaa-") for _, card in a)


def test_each_card_keeps_its_habits():
    """A card's home currency never changes."""
    batches = run(model(rate_per_second=2000, population=2_000_000), 10)
    currencies: dict[str, set] = {}
    for b in batches:
        for card, currency in zip(b.card_ids, b.currencies, strict=True):
            currencies.setdefault(card, set()).add(currency)
    assert all(len(c) == 1 for c in currencies.values())


def test_nights_are_quiet():
    """Cards swipe much less at night in their home time zone (US cards at 04:00 New York time)."""
    night_start = START_MS - (START_MS % (24 * 3600_000)) + 9 * 3600_000  # 09:00 UTC = 04:00 UTC-5
    day_start = night_start + 10 * 3600_000                                # 19:00 UTC = 14:00 UTC-5
    def us_share(start):
        m = model(start_ms=start, attack_interval_s=1e9, decoy_ratio=0)
        rows = [r for b in run_from(m, start, 5) for r in b.rows()]
        return sum(r[3] == "USD" for r in rows) / len(rows)
    assert us_share(night_start) < 0.5 * us_share(day_start)


def run_from(m, start, minutes):
    batches = []
    while m.cursor_ms < start + minutes * MIN:
        batches.append(m.next_slice())
    return batches


def test_a_population_that_carries_a_rate_by_day_carries_it_at_night():
    """At 04:00 UTC most cards sleep; the sampler draws more instead of giving up (it refused 2,500 swipes per
    event second from 10 million cards at night, which `make bench-load` at 50,000 tx/s asks for)."""
    night = START_MS - (START_MS % (24 * 3600_000)) + 4 * 3600_000
    m = model(start_ms=night, rate_per_second=2500, population=10_000_000, attack_interval_s=1e9, decoy_ratio=0)
    batches = run_from(m, night, 1)
    injected = sum(e.txn_count for b in batches for e in b.finished_episodes) + sum(
        e.txn_count for e in m.cut_open_episodes(m.cursor_ms))  # the run's first attack comes on top
    assert sum(len(b.card_ids) for b in batches) - injected == 2500 * 60


def test_records_match_the_schema():
    """Every generated record is valid against the published JSON Schema."""
    validator = jsonschema.Draft202012Validator(json.loads(json.dumps(SCHEMA), parse_float=Decimal))
    for batch in run(model(), 3):
        for row in batch.rows():
            validator.validate(json.loads(encode(*row), parse_float=Decimal))


def test_too_small_population_fails_fast():
    """A population that cannot sustain the rate without false attacks is refused up front."""
    with pytest.raises(ValueError, match="FRAUD_GENERATOR__POPULATION"):
        model(rate_per_second=5000, population=100_000)


def test_a_stop_mid_attack_records_what_was_sent():
    """Cutting an attack short records only the swipes sent; too few to trip become a decoy."""
    m = model(attack_interval_s=1)
    run(m, 1)
    cut = m.cut_open_episodes(m.cursor_ms)
    assert cut
    for e in cut:
        assert e.last_event_time_ms < m.cursor_ms
        if e.kind == ATTACK:
            assert e.txn_count > 5
