"""The level rule's Qs and predicates are built once per level, local day and configs' terms
(dunning.selectors._LEVEL_RULE): asked again, the same objects; a changed term, day or time zone,
new ones; never more than LEVEL_RULE_CACHED kept."""

import datetime

from django.test import override_settings
from django.utils import timezone

from dunning import selectors
from dunning.selectors import active_configs, level_of_loaded, level_q, level_terms_q


def test_the_same_terms_give_the_same_q_and_changed_terms_a_new_one(config):
    now = timezone.now()
    first = level_q(1, now=now, configs=active_configs())
    assert level_q(1, now=now + datetime.timedelta(seconds=1), configs=active_configs()) is first
    assert level_terms_q(1, now=now, configs=active_configs()) is level_terms_q(1, now=now, configs=active_configs())
    config.level_1_days += 1
    changed = level_q(1, now=now, configs=[config])
    assert changed is not first and str(changed) != str(first)
    assert level_q(1, now=now + datetime.timedelta(days=1), configs=active_configs()) is not first
    with override_settings(TIME_ZONE="America/New_York"):
        assert level_q(1, now=now, configs=active_configs()) is not first
    config.is_active = False
    assert level_q(1, now=now, configs=[config]) is selectors.NOTHING


def test_the_cache_is_cleared_when_full(config, monkeypatch):
    monkeypatch.setattr(selectors, "LEVEL_RULE_CACHED", 5)
    selectors._LEVEL_RULE.clear()
    now = timezone.now()
    for day in range(20):
        level_of_loaded(now=now + datetime.timedelta(days=day), configs=active_configs())
        assert len(selectors._LEVEL_RULE) <= 5
