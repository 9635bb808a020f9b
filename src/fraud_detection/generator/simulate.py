"""Card traffic as a pure, seeded model: legitimate habits plus injected velocity attacks and decoys.

No I/O here. ``TrafficModel.next_slice`` returns every transaction with event time in the next slice,
sorted by time, and the episodes (attacks and decoys) whose last transaction is now out: the ground truth.

Why legitimate traffic never trips the rule: a card may swipe again only after ``window / threshold``
plus one millisecond, so ``threshold + 1`` of its swipes always span more than the window. Attack and
decoy cards are idle for a whole window before their episode and are held back from legitimate traffic
until a window after it, so each episode is exactly what the ground truth says it is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from fraud_detection.ground_truth import ATTACK, DECOY_BELOW_THRESHOLD, DECOY_SLOW, Episode
from fraud_detection.rules.velocity import DEFAULT_THRESHOLD, DEFAULT_WINDOW_MS
from fraud_detection.transaction import CHANNELS, Transaction

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS

# Home countries of the card population: (country, currency, UTC offset in hours, weight).
COUNTRIES = (
    ("US", "USD", -5, 30), ("GB", "GBP", 0, 10), ("DE", "EUR", 1, 10), ("FR", "EUR", 1, 8),
    ("ES", "EUR", 1, 5), ("IT", "EUR", 1, 5), ("NL", "EUR", 1, 3), ("PL", "PLN", 1, 3),
    ("SE", "SEK", 1, 2), ("CA", "CAD", -5, 6), ("BR", "BRL", -3, 6), ("IN", "INR", 5, 6),
    ("JP", "JPY", 9, 4), ("AU", "AUD", 10, 2),
)
# Merchant category codes with (weight, median amount in currency units).
CATEGORIES = (
    ("5411", 25, 45.0), ("5812", 18, 28.0), ("5814", 14, 9.0), ("5541", 12, 55.0), ("5912", 6, 18.0),
    ("5311", 6, 60.0), ("5999", 6, 35.0), ("4111", 6, 3.5), ("5732", 3, 220.0), ("7011", 2, 180.0),
    ("4511", 2, 320.0),
)
HABIT_CHANNELS = ("contactless", "pos", "ecommerce")  # a card's usual way to pay; any of CHANNELS otherwise
MERCHANTS = 50_000           # merchant ids m00000..m49999, each with a fixed category
FAVOURITES = 3               # favourite merchants per card
FAVOURITE_SHARE = 0.75       # share of a card's swipes at a favourite merchant
ABROAD_SHARE = 0.02          # share of swipes in a country other than home
NIGHT_ACTIVITY = 0.08        # relative swipe probability between 23:00 and 07:00 local time
STRADDLE_SHARE = 0.4         # attacks placed across a 10-minute clock boundary
BURST_SHARE = 0.5            # attacks by a card-testing bot: swipes seconds apart (the rest spread over minutes)
BOT_GAP_MS = (1_000, 3_000)  # a bot's pause between two swipes
BUSY_HEADROOM = 5            # population >= this x the cards swiping within one swipe gap

_COUNTRY_CODES = np.array([c[0] for c in COUNTRIES])
_CURRENCIES = np.array([c[1] for c in COUNTRIES])
_UTC_OFFSETS_MS = np.array([c[2] * HOUR_MS for c in COUNTRIES], dtype=np.int64)
_COUNTRY_CDF = np.cumsum([c[3] for c in COUNTRIES]) / sum(c[3] for c in COUNTRIES)
_MCC_CODES = np.array([c[0] for c in CATEGORIES])
_MCC_CDF = np.cumsum([c[1] for c in CATEGORIES]) / sum(c[1] for c in CATEGORIES)
_MCC_MEDIANS = np.array([c[2] for c in CATEGORIES])
_NEVER = np.iinfo(np.int64).min // 2


@dataclass(frozen=True, slots=True)
class Batch:
    """Transactions sorted by event time, as parallel lists (one row per transaction), and the
    episodes whose last transaction is in this batch."""

    transaction_ids: list[str]
    card_ids: list[str]
    amount_cents: list[int]
    currencies: list[str]
    merchant_ids: list[str]
    categories: list[str]
    countries: list[str]
    channels: list[str]
    event_times_ms: list[int]
    finished_episodes: list[Episode]

    def __len__(self) -> int:
        return len(self.transaction_ids)

    def rows(self):
        """The transactions, in event-time order."""
        return map(Transaction._make, zip(
            self.transaction_ids, self.card_ids, self.amount_cents, self.currencies, self.merchant_ids,
            self.categories, self.countries, self.channels, self.event_times_ms, strict=True,
        ))


def _mix(values: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 finaliser: a card's or merchant's stable pseudo-random attributes from its index."""
    z = (values.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (salt + 1)) & 0xFFFFFFFFFFFFFFFF))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _unit(values: np.ndarray, salt: int) -> np.ndarray:
    """Stable uniform [0, 1) per index."""
    return (_mix(values, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class TrafficModel:
    """Seeded card traffic for one generator replica, owning the card space ``card_space``."""

    def __init__(
        self,
        *,
        card_space: str,
        population: int,
        seed: int,
        start_ms: int,
        rate_per_second: float,
        attack_interval_s: float,
        decoy_ratio: float = 0.5,
        slice_ms: int = 100,
        threshold: int = DEFAULT_THRESHOLD,
        window_ms: int = DEFAULT_WINDOW_MS,
    ) -> None:
        """``rate_per_second`` legitimate transactions per event-time second, made in slices of
        ``slice_ms`` (capped at half the swipe gap, so a card never swipes twice in one slice)."""
        if population < 1000:
            raise ValueError("population must be at least 1000 cards")
        self.min_gap_ms = window_ms // threshold + 1
        busy_cards = rate_per_second * self.min_gap_ms / 1000
        if busy_cards * BUSY_HEADROOM > population:
            raise ValueError(
                f"population of {population} cards is too small for {rate_per_second:g} transactions per "
                f"event-time second: each card would swipe more often than every {self.min_gap_ms / 1000:g} s. "
                f"Set FRAUD_GENERATOR__POPULATION to at least {int(busy_cards * BUSY_HEADROOM)}, lower the "
                "rate, or speed up the simulated clock"
            )
        self.card_space = card_space
        self.population = population
        self.threshold = threshold
        self.window_ms = window_ms
        self.slice_ms = max(1, min(slice_ms, self.min_gap_ms // 2))
        self.start_ms = self.cursor_ms = start_ms
        self._rate = rate_per_second
        self._slices = 0
        self._rng = np.random.default_rng(seed)
        self._last_swipe_ms = np.full(population, _NEVER, dtype=np.int64)
        self._attack_interval_ms = attack_interval_s * 1000
        self._decoy_interval_ms = self._attack_interval_ms / decoy_ratio if decoy_ratio > 0 else None
        self._next_attack_ms = start_ms  # the first attack starts with the run: a new run shows a detection at once
        self._first_attack = True
        self._next_decoy_ms = start_ms + self._jittered(self._decoy_interval_ms) if self._decoy_interval_ms else None
        self._pending: list[tuple[int, int, int, str]] = []  # injected (time, card, cents, channel)
        self._open: dict[Episode, list[int]] = {}  # open episode -> its event times
        self._sequence = 0
        self.injected: Counter[str] = Counter()  # episodes started, by kind

    # -- public -------------------------------------------------------------------------------------

    def card_id(self, index: int) -> str:
        return f"{self.card_space}-{index:09d}"

    def next_slice(self) -> Batch:
        """The next ``slice_ms`` of event time: legitimate and injected transactions, sorted by time."""
        k = self._slices
        self._slices += 1
        legit = int(self._rate * (k + 1) * self.slice_ms / 1000) - int(self._rate * k * self.slice_ms / 1000)
        return self._step(self.start_ms + (k + 1) * self.slice_ms, legit)

    def cut_open_episodes(self, sent_until_ms: int) -> list[Episode]:
        """Ground truth for episodes cut short by a stop: only events before ``sent_until_ms`` went out.

        An attack left with no more than ``threshold`` transactions cannot trip the rule, so it is
        recorded as a below-threshold decoy.
        """
        cut = []
        for episode, times in self._open.items():
            sent = [t for t in times if t < sent_until_ms]
            if not sent:
                continue
            kind = episode.kind
            if kind == ATTACK and len(sent) <= self.threshold:
                kind = DECOY_BELOW_THRESHOLD
            cut.append(Episode(episode.card_id, kind, sent[0], sent[-1], len(sent)))
        return cut

    def attacks_in_progress(self) -> list[tuple[str, int, int]]:
        """``(card_id, swipes made, swipes planned)`` of each attack under way at the cursor."""
        return [(e.card_id, sum(t < self.cursor_ms for t in times), e.txn_count)
                for e, times in self._open.items() if e.kind == ATTACK and times[0] < self.cursor_ms]

    # -- one step -----------------------------------------------------------------------------------

    def _step(self, end_ms: int, legit_count: int) -> Batch:
        start_ms = self.cursor_ms
        self._schedule_episodes(end_ms)
        cards, times = self._legit_cards(start_ms, end_ms, legit_count)
        amounts, channels, merchants, mccs, countries, currencies = self._legit_details(cards)

        due = [p for p in self._pending if p[0] < end_ms]
        self._pending = [p for p in self._pending if p[0] >= end_ms]
        if due:
            d_times = np.array([p[0] for p in due], dtype=np.int64)
            d_cards = np.array([p[1] for p in due], dtype=np.int64)
            d_merchants, d_mccs, d_countries, d_currencies = self._merchant_details(d_cards, abroad=True)
            cards = np.concatenate([cards, d_cards])
            times = np.concatenate([times, d_times])
            amounts = np.concatenate([amounts, np.array([p[2] for p in due], dtype=np.int64)])
            channels = np.concatenate([channels, np.array([p[3] for p in due])])
            merchants = np.concatenate([merchants, d_merchants])
            mccs = np.concatenate([mccs, d_mccs])
            countries = np.concatenate([countries, d_countries])
            currencies = np.concatenate([currencies, d_currencies])

        order = np.argsort(times, kind="stable")
        n = len(order)
        first_seq = self._sequence
        self._sequence += n
        self.cursor_ms = end_ms
        finished = [e for e in self._open if e.last_event_time_ms < end_ms]
        for episode in finished:
            del self._open[episode]
        space = self.card_space
        return Batch(
            transaction_ids=[f"{space}-t{seq:x}" for seq in range(first_seq, first_seq + n)],
            card_ids=[f"{space}-{c:09d}" for c in cards[order].tolist()],
            amount_cents=amounts[order].tolist(),
            currencies=currencies[order].tolist(),
            merchant_ids=[f"m{m:05d}" for m in merchants[order].tolist()],
            categories=mccs[order].tolist(),
            countries=countries[order].tolist(),
            channels=channels[order].tolist(),
            event_times_ms=times[order].tolist(),
            finished_episodes=finished,
        )

    def _legit_cards(self, start_ms: int, end_ms: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` distinct eligible cards with swipe times in [start, end): awake, past their gap."""
        if count == 0 or end_ms <= start_ms:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        chosen_cards: list[np.ndarray] = []
        chosen_times: list[np.ndarray] = []
        taken = 0
        accepted_share = 1.0  # of the previous round's draws: at night most cards sleep, so draw more
        for _ in range(20):
            want = count - taken
            draw = max(16, int(want * 1.6 / accepted_share))
            cards = self._rng.integers(0, self.population, draw)
            times = self._rng.integers(start_ms, end_ms, draw)
            awake = self._rng.random(draw) < self._activity(cards, times)
            rested = times - self._last_swipe_ms[cards] > self.min_gap_ms
            eligible = awake & rested
            accepted_share = max(int(eligible.sum()) / draw, 1 / 256)
            cards, times = cards[eligible], times[eligible]
            cards, first = np.unique(cards, return_index=True)
            times = times[first]
            if chosen_cards:  # drop cards already chosen in an earlier round of this step
                fresh = ~np.isin(cards, np.concatenate(chosen_cards))
                cards, times = cards[fresh], times[fresh]
            keep = self._rng.permutation(len(cards))[:want]
            cards, times = cards[keep], times[keep]
            chosen_cards.append(cards)
            chosen_times.append(times)
            taken += len(cards)
            if taken >= count:
                break
        else:
            raise RuntimeError(
                f"population of {self.population} cards is too small for this rate: most cards swiped "
                "within the last few minutes; raise FRAUD_GENERATOR__POPULATION or lower the rate"
            )
        cards, times = np.concatenate(chosen_cards), np.concatenate(chosen_times)
        self._last_swipe_ms[cards] = times
        return cards, times

    def _activity(self, cards: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Probability that a card swipes now: high while awake in its home time zone, low at night."""
        home = np.searchsorted(_COUNTRY_CDF, _unit(cards, 1), side="right")
        local_hour = ((times + _UTC_OFFSETS_MS[home]) // HOUR_MS) % 24
        return np.where((local_hour >= 7) & (local_hour < 23), 1.0, NIGHT_ACTIVITY)

    def _legit_details(self, cards: np.ndarray):
        n = len(cards)
        favourite = self._rng.random(n) < FAVOURITE_SHARE
        slot = self._rng.integers(0, FAVOURITES, n)
        favourite_merchant = (_mix(cards * FAVOURITES + slot, 2) % np.uint64(MERCHANTS)).astype(np.int64)
        random_merchant = self._rng.integers(0, MERCHANTS, n)
        merchants = np.where(favourite, favourite_merchant, random_merchant)
        mcc_index = np.searchsorted(_MCC_CDF, _unit(merchants, 3), side="right")
        # Each card has its own spending level; each swipe varies around the category's median.
        card_level = np.exp((_unit(cards, 4) - 0.5) * 1.6)
        euros = _MCC_MEDIANS[mcc_index] * card_level * self._rng.lognormal(0.0, 0.5, n)
        amounts = np.maximum(1, np.round(euros * 100)).astype(np.int64)
        channel_pref = (_unit(cards, 5) * 3).astype(np.int64)  # contactless, pos or ecommerce habit
        channels_idx = np.where(self._rng.random(n) < 0.7, channel_pref, self._rng.integers(0, 4, n))
        channels = np.array(HABIT_CHANNELS + tuple(c for c in CHANNELS if c not in HABIT_CHANNELS))[channels_idx]
        _, mccs, countries, currencies = self._merchant_details(cards, abroad=False, merchants=merchants)
        return amounts, channels, merchants, mccs, countries, currencies

    def _merchant_details(self, cards: np.ndarray, *, abroad: bool, merchants: np.ndarray | None = None):
        n = len(cards)
        if merchants is None:
            merchants = self._rng.integers(0, MERCHANTS, n)
        mccs = _MCC_CODES[np.searchsorted(_MCC_CDF, _unit(merchants, 3), side="right")]
        home = np.searchsorted(_COUNTRY_CDF, _unit(cards, 1), side="right")
        travelling = np.full(n, True) if abroad else self._rng.random(n) < ABROAD_SHARE
        elsewhere = self._rng.integers(0, len(COUNTRIES), n)
        country_idx = np.where(travelling, elsewhere, home)
        return merchants, mccs, _COUNTRY_CODES[country_idx], _CURRENCIES[home]

    # -- injected episodes --------------------------------------------------------------------------

    def _jittered(self, mean_ms: float) -> int:
        return int(mean_ms * self._rng.uniform(0.5, 1.5))

    def _schedule_episodes(self, end_ms: int) -> None:
        while self._next_attack_ms < end_ms:
            self._inject(ATTACK, self._next_attack_ms)
            self._next_attack_ms += max(1, self._jittered(self._attack_interval_ms))
        while self._next_decoy_ms is not None and self._next_decoy_ms < end_ms:
            kind = DECOY_BELOW_THRESHOLD if self._rng.random() < 0.5 else DECOY_SLOW
            self._inject(kind, self._next_decoy_ms)
            self._next_decoy_ms += max(1, self._jittered(self._decoy_interval_ms))

    def _inject(self, kind: str, not_before_ms: int) -> None:
        rng, window = self._rng, self.window_ms
        start = max(not_before_ms, self.cursor_ms)
        bot = kind == ATTACK and (self._first_attack or rng.random() < BURST_SHARE)
        if bot:  # card testing: swipes seconds apart, so the alert comes within seconds of the first one
            count = int(rng.integers(self.threshold + 1, 3 * self.threshold + 1))
            gaps = rng.integers(*BOT_GAP_MS, count - 1, endpoint=True)
            span = min(int(gaps.sum()), window - 1000)
            first = start if self._first_attack else start + int(rng.uniform(0, 30_000))
            self._first_attack = False
        elif kind == ATTACK:
            count = int(rng.integers(self.threshold + 1, 3 * self.threshold + 1))
            span = int(rng.uniform(MINUTE_MS, window - 1000))
            first = start + int(rng.uniform(0, 30_000))
            if rng.random() < STRADDLE_SHARE:  # across the next 10-minute clock boundary
                boundary = (first // (10 * MINUTE_MS) + 1) * 10 * MINUTE_MS
                first = boundary - int(span * rng.uniform(0.2, 0.8))
                first = max(first, start)
        elif kind == DECOY_BELOW_THRESHOLD:
            count, span = self.threshold, int(rng.uniform(MINUTE_MS, window - 1000))
            first = start + int(rng.uniform(0, 30_000))
        else:
            count, span = self.threshold + 1, int(rng.uniform(window + MINUTE_MS, window + 5 * MINUTE_MS))
            first = start + int(rng.uniform(0, 30_000))
        card = self._idle_card(first)
        if bot:
            times = (first + np.concatenate([[0], np.cumsum(gaps)]).clip(max=span)).tolist()
        else:
            inner = np.sort(rng.integers(first, first + span + 1, count - 2)) if count > 2 else np.empty(0, np.int64)
            times = [first, *inner.tolist(), first + span]
        amounts = self._attack_amounts(count) if kind == ATTACK else rng.integers(500, 9000, count).tolist()
        channel = "ecommerce" if rng.random() < 0.6 else "contactless"
        self._pending.extend((t, card, a, channel) for t, a in zip(times, amounts, strict=True))
        # Hold the card back from legitimate traffic until a window after the episode.
        self._last_swipe_ms[card] = times[-1] + window
        self._open[Episode(self.card_id(card), kind, times[0], times[-1], count)] = times
        self.injected[kind] += 1

    def _attack_amounts(self, count: int) -> list[int]:
        """Card testing: a few small probes, then larger purchases."""
        probes = self._rng.integers(100, 500, count // 3)
        cash_out = self._rng.integers(5_000, 90_000, count - len(probes))
        return [*probes.tolist(), *cash_out.tolist()]

    def _idle_card(self, first_ms: int) -> int:
        """A card with no swipe in the window before ``first_ms`` (its episode stands alone)."""
        for _ in range(1000):
            card = int(self._rng.integers(0, self.population))
            if self._last_swipe_ms[card] < first_ms - self.window_ms - self.min_gap_ms:
                return card
        raise RuntimeError("no idle card for an injected episode: raise FRAUD_GENERATOR__POPULATION")

