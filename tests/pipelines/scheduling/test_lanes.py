"""The policy: lane order, minimum shares, never suspending work for a lower lane."""

from pipelines.scheduling.lanes import Lane, Usage, choose, held, must_pause

SHARES = {Lane.LONG: 0.2, Lane.JOB: 0.1}


def test_highest_lane_first_when_nobody_is_starved() -> None:
    shares = {Lane.LIVE: 0.5, Lane.LONG: 0.3, Lane.JOB: 0.2}
    assert choose([Lane.JOB, Lane.LIVE, Lane.LONG], shares, SHARES) is Lane.LIVE
    assert choose([Lane.JOB, Lane.LONG], shares, SHARES) is Lane.LONG
    assert choose([], shares, SHARES) is None


def test_a_lane_below_its_minimum_share_goes_first() -> None:
    shares = {Lane.LIVE: 0.95, Lane.LONG: 0.0, Lane.JOB: 0.05}
    assert choose([Lane.LIVE, Lane.JOB], shares, SHARES) is Lane.JOB
    # Both starved: the higher of them.
    assert choose([Lane.LIVE, Lane.JOB, Lane.LONG], shares, SHARES) is Lane.LONG


def test_running_work_is_preempted_only_by_a_higher_lane() -> None:
    shares = {Lane.LIVE: 0.5, Lane.LONG: 0.25, Lane.JOB: 0.25}
    assert choose([Lane.LIVE], shares, SHARES, running=Lane.JOB) is Lane.LIVE
    assert choose([Lane.JOB], shares, SHARES, running=Lane.LIVE) is None  # a job never cuts into live work
    assert choose([Lane.LIVE], shares, SHARES, running=Lane.LIVE) is None  # same lane: FIFO, no nesting


def test_running_work_below_its_share_keeps_the_engine() -> None:
    shares = {Lane.LIVE: 0.95, Lane.LONG: 0.0, Lane.JOB: 0.05}
    assert choose([Lane.LIVE], shares, SHARES, running=Lane.JOB) is None
    # With no minimum share at all, a job yields to every live request.
    assert choose([Lane.LIVE], shares, {}, running=Lane.JOB) is Lane.LIVE


def test_usage_shares_follow_engine_time_and_forget_the_past() -> None:
    usage = Usage(window_s=10.0)
    usage.charge(Lane.JOB, 9.0, now=0.0)
    usage.charge(Lane.LIVE, 1.0, now=0.0)
    assert abs(usage.share(Lane.JOB, now=0.0) - 0.9) < 1e-9
    # Decay scales every lane alike: shares stay until new work is charged.
    assert abs(usage.share(Lane.JOB, now=30.0) - 0.9) < 1e-9
    usage.charge(Lane.LIVE, 1.0, now=30.0)  # the job's 9 s are now worth 9 * e^-3
    assert usage.share(Lane.JOB, now=30.0) < 0.35
    assert usage.share(Lane.LONG, now=30.0) == 0.0
    assert Usage().share(Lane.LIVE, now=5.0) == 0.0  # an idle engine: nobody has a share


def test_held_lanes_run_only_below_their_minimum_share() -> None:
    holding = held(live_idle_s=0.2)
    assert holding == {Lane.LONG}  # jobs fill the gaps live traffic leaves; long documents do not
    assert held(live_idle_s=5.0) == frozenset()
    fair = {Lane.LIVE: 0.7, Lane.LONG: 0.3, Lane.JOB: 0.0}
    assert choose([Lane.LONG], fair, SHARES, holding=holding) is None  # waits for live to pause
    assert choose([Lane.LONG], fair, SHARES) is Lane.LONG
    behind = {Lane.LIVE: 0.9, Lane.LONG: 0.1, Lane.JOB: 0.0}
    assert choose([Lane.LONG], behind, SHARES, holding=holding) is Lane.LONG  # below its 0.2
    assert must_pause(Lane.LONG, fair, SHARES, holding)
    assert not must_pause(Lane.LONG, behind, SHARES, holding)
    assert not must_pause(Lane.JOB, fair, SHARES, holding)


def test_a_lane_starting_after_a_pause_is_credited_its_minimum_share_not_a_burst() -> None:
    usage = Usage(window_s=10.0)
    usage.charge(Lane.LIVE, 8.0, now=0.0)
    usage.credit(Lane.JOB, 0.2, now=0.0)
    assert abs(usage.share(Lane.JOB, now=0.0) - 0.2) < 1e-9  # not 0: it does not run alone to catch up
    usage.charge(Lane.JOB, 5.0, now=0.0)
    usage.credit(Lane.JOB, 0.2, now=0.0)
    assert usage.share(Lane.JOB, now=0.0) > 0.4  # a credit never takes away what a lane had
