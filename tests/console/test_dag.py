"""The run page's DAG drawing past 150 tasks: numbered siblings of one column collapse into one group node, and the
graph of groups stays acyclic and small whatever the run's size."""

from __future__ import annotations

from odin.api.console.dag import collapse, layout


def fan(n: int) -> tuple[list[str], dict[str, list[str]]]:
    shards = [f"shard-{i:05d}" for i in range(n)]
    return ["prep", *shards, "merge"], {**{s: ["prep"] for s in shards}, "merge": shards}


def test_a_fan_out_and_fan_in_of_100000_tasks_is_three_nodes() -> None:
    order, depends = fan(100_000)
    statuses = {name: "succeeded" for name in order} | {"shard-00007": "failed", "shard-00008": "running"}
    c = collapse(order, depends, statuses)
    assert c.order == ["prep", "shard-[00000..99999]", "merge"]
    assert c.depends == {"prep": [], "shard-[00000..99999]": ["prep"], "merge": ["shard-[00000..99999]"]}
    group = c.groups["shard-[00000..99999]"]
    assert (group.prefix, group.members, group.status) == ("shard-", 100_000, "failed")
    assert group.summary == "1 failed, 1 running, 99998 succeeded"
    assert group.headline == "1 failed"
    drawn = layout(c.order, c.depends)
    assert len(drawn.nodes) == 3 and len(drawn.edges) == 2


def test_numbered_tasks_in_different_columns_stay_apart() -> None:
    # step1 -> step2 -> step3: one name stem, three columns. Merging them would draw a loop.
    order = ["step1", "step2", "step3", "other"]
    depends = {"step2": ["step1"], "step3": ["step2"]}
    c = collapse(order, depends, {})
    assert c.order == ["step1", "step2", "step3", "other"]
    assert c.depends["step3"] == ["step2"]
    assert c.groups["step1"].members == 1 and c.groups["other"].status == "pending"


def test_a_group_all_in_one_state_says_so() -> None:
    order, depends = fan(3)
    c = collapse(order, depends, {name: "succeeded" for name in order})
    assert c.groups["shard-[00000..00002]"].headline == "succeeded"
