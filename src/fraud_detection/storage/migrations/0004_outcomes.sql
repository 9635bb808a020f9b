-- One definition of how ground truth and alerts match, for every SQL reader (storage/reports.py and the
-- dashboard): an episode is alerted by a rule when a live (not merged) alert of that rule on the same card
-- overlaps its event-time span; a live alert is true when it overlaps an attack of its card.
-- evaluation/quality.py holds the same rule in Python; the tests hold the two to each other, and
-- ground_truth.ATTACK_KINDS to the kinds named here.

CREATE VIEW episode_outcomes AS
SELECT i.source, i.card_id, i.kind, i.first_event_time, i.last_event_time, i.txn_count,
       i.kind IN ('attack', 'labelled_fraud') AS is_attack,
       ARRAY(SELECT DISTINCT a.rule FROM alerts a
             WHERE a.card_id = i.card_id AND a.merged_into IS NULL
               AND a.first_event_time <= i.last_event_time AND a.last_event_time >= i.first_event_time
             ORDER BY a.rule) AS alerted_by
FROM injected_attacks i;
COMMENT ON VIEW episode_outcomes IS
    'each ground-truth episode: is it an attack, and the rules whose live alerts overlap it';

CREATE VIEW alert_outcomes AS
SELECT a.alert_id, a.rule, a.card_id, a.first_event_time, a.last_event_time, a.txn_count, a.detected_at,
       EXISTS (SELECT 1 FROM injected_attacks i
               WHERE i.card_id = a.card_id AND i.kind IN ('attack', 'labelled_fraud')
                 AND a.first_event_time <= i.last_event_time AND a.last_event_time >= i.first_event_time)
           AS matches_attack
FROM alerts a
WHERE a.merged_into IS NULL;
COMMENT ON VIEW alert_outcomes IS 'each live alert: does it overlap an attack of its card (else it is false)';
