"""The restart budget: a growing pause, bounded, and a bounded count per window."""

from pipeline.processes.restarts import RestartBudget


def test_the_pause_doubles_up_to_its_cap():
    budget = RestartBudget(base_s=0.5, max_pause_s=3.0, window_s=60, max_restarts=10)

    pauses = [budget.next_pause(now=float(second)) for second in range(5)]

    assert pauses == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_the_budget_is_spent_within_a_window_and_comes_back_after_it():
    budget = RestartBudget(base_s=0.5, window_s=60, max_restarts=3)

    # Given three restarts within a minute
    assert [budget.next_pause(now) for now in (0.0, 1.0, 2.0)] == [0.5, 1.0, 2.0]

    # Then a fourth is refused while they are in the window
    assert budget.next_pause(now=30.0) is None

    # And once the first has left the window there is room for one, with a shorter pause
    assert budget.next_pause(now=60.5) == 2.0
    assert budget.next_pause(now=61.5) == 2.0
    assert budget.next_pause(now=61.6) is None
