"""A rule's targets read back from the rules dataset (orgscope.targets)."""

from __future__ import annotations

from orgscope.targets import arn_account, rule_targets, target_arns


def test_target_arns_tolerates_bad_json():
    assert target_arns('[{"arn": "a"}, {"arn": null}, "x"]') == ["a"]
    assert target_arns("not json") == []
    assert target_arns(None) == []
    assert target_arns('{"arn": "a"}') == []


def test_rule_targets_keep_the_objects_with_an_arn():
    text = '[{"id": "1", "arn": "a", "role_arn": null}, {"id": "2"}]'
    assert rule_targets(text) == [{"id": "1", "arn": "a", "role_arn": None}]


def test_arn_account():
    assert arn_account("arn:aws:sqs:us-east-1:111111111111:q") == "111111111111"
    assert arn_account("arn:aws:s3:::bucket") is None
    assert arn_account("not-an-arn") is None
