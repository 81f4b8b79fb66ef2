"""The execution decider, read as *given these events, when this command, then these events*.

Every legal transition of the state machine has its own example; a table of (state, command)
proves every other pair refused with the error that says why; a property test folds random legal
histories and checks what must hold whatever happened.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given as hypothesis_given, settings, strategies as st

from events.catalog import (
    Cancelled,
    Completed,
    DeclaredInput,
    EventPayload,
    Expired,
    Failed,
    Processing,
    Progress,
    Retried,
    Submitted,
    Uploaded,
)
from events.envelope import new_event
from services.executions.commands import (
    Cancel,
    Command,
    Complete,
    Expire,
    Fail,
    LoseWorker,
    RecordUpload,
    ReportProgress,
    Retry,
    Start,
    Submit,
    TimeOut,
)
from services.executions.decider import (
    AttemptsExhausted,
    DomainError,
    ErrorInfo,
    ExecutionExists,
    ExecutionNotFound,
    ExecutionState,
    IllegalTransition,
    InputNotUploaded,
    InvalidCommand,
    NotRetryable,
    NotTimedOut,
    Status,
    actions,
    decide,
    evolve,
    execution,
    initial_state,
)
from tests.events.factories import blob

fold = execution.fold  # the decider as one value folds its own events

EID = uuid.UUID("0b6f3c1e-8d1a-4a53-9a57-2f1f0e8f0c11")
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=5)
DEADLINE = NOW + TIMEOUT
PHOTO = DeclaredInput(filename="photo.png", size=9, content_type="image/png")
UPLOAD = blob("uploads")
OUTPUT = blob("processed")


# -- given / when / then -------------------------------------------------------------------------


class Given:
    def __init__(self, history: list[EventPayload]) -> None:
        self.history = history

    def when(self, command: Command) -> When:
        return When(self.history, command)


class When:
    def __init__(self, history: list[EventPayload], command: Command) -> None:
        self.history = history
        self.command = command

    def then(self, *expected: EventPayload) -> ExecutionState:
        """The command yields exactly ``expected``; returns the state after them."""
        produced = decide(self.command, fold(self.history))
        assert produced == list(expected)
        return fold([*self.history, *produced])

    def then_raises(self, error: type[DomainError]) -> DomainError:
        with pytest.raises(DomainError) as info:
            decide(self.command, fold(self.history))
        assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
        return info.value


def given(*history: EventPayload) -> Given:
    return Given(list(history))


# -- events and commands -------------------------------------------------------------------------


def submitted(with_input: bool = True) -> Submitted:
    return Submitted(
        execution_id=EID,
        tool="image-rotate",
        category="image",
        tool_version="1",
        mode="async",
        params={"angle": 90},
        owner="7",
        input=PHOTO if with_input else None,
    )


def submit(with_input: bool = True) -> Submit:
    return Submit(
        execution_id=EID,
        tool="image-rotate",
        category="image",
        tool_version="1",
        mode="async",
        owner="7",
        params={"angle": 90},
        input=PHOTO if with_input else None,
    )


def processing(attempt: int = 1, worker: str = "worker-1") -> Processing:
    return Processing(attempt=attempt, worker_id=worker, deadline=DEADLINE)


def failed(retryable: bool = True, attempt: int = 1, code: str = "tool_crashed") -> Failed:
    return Failed(code=code, message="the tool exited 1", retryable=retryable, attempt=attempt)


UPLOADED = Uploaded(blob=UPLOAD)
COMPLETED = Completed(output=OUTPUT, duration_ms=1200)
RUNNING = [submitted(), UPLOADED, processing(1)]


# -- every legal transition ---------------------------------------------------------------------


def test_submit_opens_an_execution() -> None:
    state = given().when(submit()).then(submitted())
    assert state.status is Status.SUBMITTED
    assert (state.execution_id, state.tool, state.category, state.owner) == (
        EID,
        "image-rotate",
        "image",
        "7",
    )
    assert state.params == {"angle": 90}
    assert state.input == PHOTO
    assert state.attempt == 0


def test_submit_of_a_replay_remembers_the_original() -> None:
    original = uuid.uuid4()
    command = Submit(EID, "image-rotate", "image", "1", "sync", "7", replay_of=original)
    state = (
        given()
        .when(command)
        .then(
            Submitted(
                execution_id=EID,
                tool="image-rotate",
                category="image",
                tool_version="1",
                mode="sync",
                owner="7",
                replay_of=original,
            )
        )
    )
    assert state.replay_of == original
    assert state.mode == "sync"


def test_record_upload_of_the_declared_input() -> None:
    state = given(submitted()).when(RecordUpload(UPLOAD)).then(Uploaded(blob=UPLOAD))
    assert state.status is Status.UPLOADED
    assert state.upload == UPLOAD


def test_start_a_file_less_execution_straight_from_submitted() -> None:
    state = (
        given(submitted(with_input=False))
        .when(Start("worker-1", NOW, TIMEOUT))
        .then(Processing(attempt=1, worker_id="worker-1", deadline=NOW + TIMEOUT))
    )
    assert state.status is Status.PROCESSING
    assert (state.attempt, state.worker_id, state.deadline) == (1, "worker-1", DEADLINE)


def test_start_an_uploaded_execution() -> None:
    given(submitted(), UPLOADED).when(Start("worker-1", NOW, TIMEOUT)).then(processing(1))


def test_start_a_retrying_execution_takes_the_next_attempt() -> None:
    later = NOW + timedelta(minutes=7)
    state = (
        given(*RUNNING, failed(), Retried(next_attempt=2))
        .when(Start("worker-2", later, TIMEOUT))
        .then(Processing(attempt=2, worker_id="worker-2", deadline=later + TIMEOUT))
    )
    assert state.attempt == 2
    assert state.worker_id == "worker-2"


def test_report_progress() -> None:
    state = (
        given(*RUNNING)
        .when(ReportProgress(40.0, "rotating"))
        .then(Progress(percent=40.0, message="rotating"))
    )
    assert (state.status, state.percent, state.progress_message) == (
        Status.PROCESSING,
        40.0,
        "rotating",
    )


def test_complete_with_an_output_blob() -> None:
    state = given(*RUNNING).when(Complete(1200, output=OUTPUT)).then(COMPLETED)
    assert state.status is Status.COMPLETED
    assert (state.output, state.result, state.duration_ms, state.percent) == (
        OUTPUT,
        None,
        1200,
        100.0,
    )


def test_complete_with_an_inline_result() -> None:
    state = (
        given(*RUNNING)
        .when(Complete(15, result='{"words": 3}'))
        .then(Completed(result='{"words": 3}', duration_ms=15))
    )
    assert (state.output, state.result) == (None, '{"words": 3}')


def test_fail() -> None:
    state = (
        given(*RUNNING)
        .when(Fail("bad_image", "not a PNG", retryable=False))
        .then(Failed(code="bad_image", message="not a PNG", retryable=False, attempt=1))
    )
    assert state.status is Status.FAILED
    assert state.error == ErrorInfo("bad_image", "not a PNG", False)


def test_time_out_past_the_deadline_is_a_retryable_failure() -> None:
    [event] = decide(TimeOut(DEADLINE + timedelta(seconds=1)), fold(RUNNING))
    assert isinstance(event, Failed)
    assert (event.code, event.retryable, event.attempt) == ("timeout", True, 1)
    assert str(DEADLINE) in event.message
    assert fold([*RUNNING, event]).status is Status.FAILED


@pytest.mark.parametrize(
    "history",
    [
        [submitted()],
        [submitted(), UPLOADED],
        RUNNING,
        [*RUNNING, failed(), Retried(next_attempt=2)],
    ],
    ids=["submitted", "uploaded", "processing", "retrying"],
)
def test_cancel_a_live_execution(history: list[EventPayload]) -> None:
    state = (
        given(*history).when(Cancel("changed my mind")).then(Cancelled(reason="changed my mind"))
    )
    assert state.status is Status.CANCELLED
    assert state.cancel_reason == "changed my mind"


def test_retry_a_retryable_failure_below_max_attempts() -> None:
    state = (
        given(*RUNNING, failed(retryable=True))
        .when(Retry(max_attempts=3))
        .then(Retried(next_attempt=2))
    )
    assert state.status is Status.RETRYING


def test_retry_the_second_attempt_of_three() -> None:
    history = [*RUNNING, failed(), Retried(next_attempt=2), processing(2), failed(attempt=2)]
    given(*history).when(Retry(max_attempts=3)).then(Retried(next_attempt=3))


def test_the_owner_may_bring_a_pending_retry_forward() -> None:
    pending = Failed(
        code="timeout",
        message="slow",
        retryable=True,
        attempt=1,
        next_attempt_at=NOW + timedelta(seconds=25),
        max_attempts=3,
    )
    given(*RUNNING, pending).when(Retry(max_attempts=3, by_owner=True)).then(
        Retried(next_attempt=2)
    )


def test_the_owner_cannot_retry_a_final_failure() -> None:
    """Issue 16: an owner could retry a failure the tool called final, without end."""
    err = (
        given(*RUNNING, failed(retryable=False))
        .when(Retry(max_attempts=3, by_owner=True))
        .then_raises(NotRetryable)
    )
    assert err.code == "not_retryable"


def test_the_owner_cannot_retry_a_failure_with_no_retry_pending() -> None:
    err = (
        given(*RUNNING, failed(retryable=True))
        .when(Retry(max_attempts=3, by_owner=True))
        .then_raises(AttemptsExhausted)
    )
    assert err.code == "attempts_exhausted"


@pytest.mark.parametrize(
    "ending",
    [[*RUNNING, COMPLETED], [*RUNNING, failed()], [submitted(), Cancelled(reason="")]],
    ids=["completed", "failed", "cancelled"],
)
def test_expire_an_ended_execution_remembers_how_it_ended(ending: list[EventPayload]) -> None:
    before = fold(ending).status
    state = (
        given(*ending).when(Expire((UPLOAD, OUTPUT))).then(Expired(blobs_removed=[UPLOAD, OUTPUT]))
    )
    assert state.status is Status.EXPIRED
    assert state.ended_as is before
    assert state.blobs_removed == (UPLOAD, OUTPUT)


def test_an_owner_deletes_an_ended_run_or_one_retention_expired_once() -> None:
    deleted = Expired(blobs_removed=[UPLOAD, OUTPUT], deleted=True)
    state = given(*RUNNING, COMPLETED).when(Expire((UPLOAD, OUTPUT), deleted=True)).then(deleted)
    assert state.deleted and state.ended_as is Status.COMPLETED

    expired = Expired(blobs_removed=[UPLOAD, OUTPUT])
    state = (
        given(*RUNNING, COMPLETED, expired).when(Expire(deleted=True)).then(Expired(deleted=True))
    )
    assert state.deleted and state.ended_as is Status.COMPLETED  # not "expired"
    assert state.blobs_removed == (UPLOAD, OUTPUT)
    given(*RUNNING, COMPLETED, expired, Expired(deleted=True)).when(
        Expire(deleted=True)
    ).then_raises(IllegalTransition)
    given(*RUNNING, COMPLETED, expired).when(Expire()).then_raises(IllegalTransition)
    given(*RUNNING).when(Expire(deleted=True)).then_raises(IllegalTransition)


# -- refusals that depend on the command, not only the state ------------------------------------


def test_complete_needs_an_output_or_a_result() -> None:
    err = given(*RUNNING).when(Complete(10)).then_raises(IllegalTransition)
    assert str(err).startswith("Complete:")


@pytest.mark.parametrize("now", [NOW, DEADLINE], ids=["before", "at"])
def test_time_out_is_refused_until_the_deadline_has_passed(now: datetime) -> None:
    err = given(*RUNNING).when(TimeOut(now)).then_raises(NotTimedOut)
    assert str(err).startswith("TimeOut:")


def test_automatic_retry_stops_at_max_attempts() -> None:
    err = given(*RUNNING, failed()).when(Retry(max_attempts=1)).then_raises(AttemptsExhausted)
    assert "1 of 1" in str(err)


def test_the_owner_cannot_retry_past_max_attempts_either() -> None:
    given(*RUNNING, failed(retryable=True)).when(Retry(max_attempts=1, by_owner=True)).then_raises(
        AttemptsExhausted
    )


# -- the whole table: every state with every command ---------------------------------------

RETRIED_TWICE = [
    *RUNNING,
    failed(attempt=1),
    Retried(next_attempt=2),
    processing(2),
    failed(attempt=2),
    Retried(next_attempt=3),
    processing(3),
    failed(attempt=3),
]

STATES: dict[str, list[EventPayload]] = {
    "new": [],
    "submitted, file-less": [submitted(with_input=False)],
    "submitted, awaiting upload": [submitted()],
    "uploaded": [submitted(), UPLOADED],
    "processing": RUNNING,
    "completed": [*RUNNING, COMPLETED],
    "failed, retryable": [*RUNNING, failed(retryable=True)],
    "failed, final": [*RUNNING, failed(retryable=False)],
    "failed, out of attempts": RETRIED_TWICE,
    "cancelled": [submitted(), Cancelled(reason="")],
    "retrying": [*RUNNING, failed(), Retried(next_attempt=2)],
    "expired": [*RUNNING, COMPLETED, Expired()],
}

# One well-formed command of each type; whether it is legal depends only on the state.
COMMANDS: dict[str, Command] = {
    "Submit": submit(),
    "RecordUpload": RecordUpload(UPLOAD),
    "Start": Start("worker-9", NOW + timedelta(minutes=1), TIMEOUT),
    "ReportProgress": ReportProgress(50.0, "half"),
    "Complete": Complete(1000, result="ok"),
    "Fail": Fail("tool_crashed", "boom", retryable=True),
    "LoseWorker": LoseWorker("worker-1", 1),
    "Cancel": Cancel("no longer needed"),
    "Retry": Retry(max_attempts=3),
    "TimeOut": TimeOut(DEADLINE + timedelta(minutes=1)),
    "Expire": Expire((UPLOAD,)),
}

LEGAL: dict[str, set[str]] = {
    "new": {"Submit"},
    "submitted, file-less": {"Start", "Cancel"},
    "submitted, awaiting upload": {"RecordUpload", "Cancel"},
    "uploaded": {"Start", "Cancel"},
    "processing": {"ReportProgress", "Complete", "Fail", "LoseWorker", "TimeOut", "Cancel"},
    "completed": {"Expire"},
    "failed, retryable": {"Retry", "Expire"},
    "failed, final": {"Expire"},
    "failed, out of attempts": {"Expire"},
    "cancelled": {"Expire"},
    "retrying": {"Start", "Cancel"},
    "expired": set(),
}

# Refusals more specific than IllegalTransition; every other illegal pair is an IllegalTransition.
SPECIFIC: dict[tuple[str, str], type[DomainError]] = {
    ("submitted, awaiting upload", "Start"): InputNotUploaded,
    ("failed, final", "Retry"): NotRetryable,
    ("failed, out of attempts", "Retry"): AttemptsExhausted,
}
for _command in COMMANDS:
    if _command != "Submit":
        SPECIFIC[("new", _command)] = ExecutionNotFound
for _state in STATES:
    if _state != "new":
        SPECIFIC[(_state, "Submit")] = ExecutionExists

# Refused for what the execution was submitted with, not for its status.
UPLOAD_WITHOUT_INPUT = ("submitted, file-less", "RecordUpload")

PAIRS = [(s, c) for s in STATES for c in COMMANDS]
LEGAL_PAIRS = [(s, c) for s, c in PAIRS if c in LEGAL[s]]
ILLEGAL_PAIRS = [(s, c) for s, c in PAIRS if c not in LEGAL[s]]


def _ids(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{c} when {s}" for s, c in pairs]


def test_the_table_covers_every_state_and_command_type() -> None:
    reached = {fold(history).status for history in STATES.values()}
    assert reached == set(Status)
    assert {type(c) for c in COMMANDS.values()} == set(Command.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("state", "command"), LEGAL_PAIRS, ids=_ids(LEGAL_PAIRS))
def test_a_legal_pair_produces_events(state: str, command: str) -> None:
    produced = decide(COMMANDS[command], fold(STATES[state]))
    assert produced
    for event in produced:
        new_event(event)  # storable: the catalog accepts it


@pytest.mark.parametrize(("state", "command"), ILLEGAL_PAIRS, ids=_ids(ILLEGAL_PAIRS))
def test_an_illegal_pair_is_refused_saying_why(state: str, command: str) -> None:
    expected = SPECIFIC.get((state, command), IllegalTransition)
    current = fold(STATES[state]).status
    err = given(*STATES[state]).when(COMMANDS[command]).then_raises(expected)
    assert str(err).startswith(f"{command}:")
    if expected is IllegalTransition and (state, command) != UPLOAD_WITHOUT_INPUT:
        # refused for the state it is in: the message says which
        assert f"the execution is {current.value}" in str(err)


REFUSALS = [
    *[pytest.param(STATES[s], COMMANDS[c], id=f"{c} when {s}") for s, c in ILLEGAL_PAIRS],
    pytest.param(RUNNING, Complete(10), id="Complete without output"),
    pytest.param(RUNNING, TimeOut(NOW), id="TimeOut before deadline"),
    pytest.param(RUNNING, LoseWorker("worker-2", 1), id="LoseWorker of another worker"),
    pytest.param(RUNNING, LoseWorker("worker-1", 2), id="LoseWorker of another attempt"),
    pytest.param(RUNNING, ReportProgress(150), id="ReportProgress over 100 percent"),
    pytest.param(RUNNING, Fail("Tool Crashed", "", False), id="Fail with a malformed code"),
]


@pytest.mark.parametrize(("history", "command"), REFUSALS)
def test_a_refusal_carries_the_status_it_was_refused_in(
    history: list[EventPayload], command: Command
) -> None:
    with pytest.raises(DomainError) as info:
        decide(command, fold(history))
    assert info.value.status is fold(history).status


# -- evolve and fold -----------------------------------------------------------------------------


def test_fold_of_nothing_is_the_initial_state() -> None:
    assert fold([]) == initial_state() == ExecutionState()
    assert initial_state().status is Status.NEW


def test_attempts_are_numbered_across_retries() -> None:
    states = [fold(RETRIED_TWICE[: i + 1]) for i in range(len(RETRIED_TWICE))]
    assert [s.attempt for s in states] == [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]
    assert states[-1].error == ErrorInfo("tool_crashed", "the tool exited 1", True)


def test_a_new_attempt_resets_progress_and_clears_the_error() -> None:
    history = [*RUNNING, Progress(percent=80, message="almost"), failed(), Retried(next_attempt=2)]
    retrying = fold(history)
    assert retrying.status is Status.RETRYING
    assert retrying.error is not None  # why it is being retried stays visible while it waits
    assert retrying.percent == 80
    restarted = evolve(retrying, processing(2, "worker-2"))
    assert (restarted.percent, restarted.progress_message) == (0.0, "")
    assert restarted.error is None
    assert (restarted.attempt, restarted.worker_id) == (2, "worker-2")


def test_progress_keeps_the_latest_report() -> None:
    state = fold([*RUNNING, Progress(percent=10), Progress(percent=60, message="encoding")])
    assert (state.percent, state.progress_message) == (60, "encoding")


def test_expired_keeps_what_the_execution_was() -> None:
    state = fold([*RUNNING, failed(retryable=False), Expired(blobs_removed=[UPLOAD])])
    assert state.status is Status.EXPIRED
    assert state.ended_as is Status.FAILED
    assert state.error == ErrorInfo("tool_crashed", "the tool exited 1", False)
    assert state.upload == UPLOAD
    assert state.blobs_removed == (UPLOAD,)


def test_fold_continues_from_a_given_state() -> None:
    assert fold(RUNNING[2:], fold(RUNNING[:2])) == fold(RUNNING)


def test_fold_does_not_share_params_with_the_event() -> None:
    event = submitted()
    state = fold([event])
    state.params["angle"] = 180  # type: ignore[index]
    assert event.params == {"angle": 90}


# -- random legal histories ----------------------------------------------------------------------

minutes = st.integers(min_value=0, max_value=120).map(lambda m: NOW + timedelta(minutes=m))
# Commands that end an execution are drawn less often, so that histories get to run and retry.
# (The number before each strategy is its weight.)
COMMAND_STRATEGIES = {
    "submit": (1, st.builds(submit, with_input=st.booleans())),
    "upload": (2, st.just(RecordUpload(UPLOAD))),
    "start": (
        4,
        st.builds(
            Start,
            worker_id=st.sampled_from(["worker-1", "worker-2"]),
            now=minutes,
            timeout=st.just(TIMEOUT),
        ),
    ),
    "progress": (3, st.builds(ReportProgress, percent=st.floats(0, 100), message=st.just("x"))),
    "complete": (
        1,
        st.builds(
            Complete,
            duration_ms=st.integers(0, 10**6),
            output=st.sampled_from([None, OUTPUT]),
            result=st.sampled_from([None, "ok"]),
        ),
    ),
    "fail": (
        3,
        st.builds(
            Fail,
            code=st.sampled_from(["tool_crashed", "bad_input"]),
            message=st.just("x"),
            retryable=st.booleans(),
        ),
    ),
    "cancel": (1, st.builds(Cancel, reason=st.just("stop"))),
    "retry": (4, st.builds(Retry, max_attempts=st.integers(1, 5), by_owner=st.booleans())),
    "timeout": (2, st.builds(TimeOut, now=minutes)),
    "lose": (
        1,
        st.builds(
            LoseWorker,
            worker_id=st.sampled_from(["worker-1", "worker-2"]),
            attempt=st.integers(1, 3),
        ),
    ),
    "expire": (
        1,
        st.builds(Expire, blobs_removed=st.sampled_from([(), (UPLOAD,), (UPLOAD, OUTPUT)])),
    ),
}
commands = st.sampled_from(
    [strategy for weight, strategy in COMMAND_STRATEGIES.values() for _ in range(weight)]
).flatmap(lambda strategy: strategy)


@settings(max_examples=300, deadline=None)
@hypothesis_given(
    st.builds(submit, with_input=st.booleans()), st.lists(commands, min_size=20, max_size=80)
)
def test_random_legal_histories_keep_the_invariants(first: Submit, rest: list[Command]) -> None:
    state = initial_state()
    for command in [first, *rest]:
        try:
            produced = decide(command, state)
        except DomainError:
            continue
        assert state.status is not Status.EXPIRED, f"{command} accepted after Expired"
        for event in produced:
            new_event(event)  # every decided event can be stored
            after = evolve(state, event)
            assert after.attempt >= state.attempt
            match event:
                case Processing():
                    assert event.attempt == state.attempt + 1
                case Retried():
                    assert event.next_attempt == state.attempt + 1
                case Completed():
                    assert event.output is not None or event.result is not None
                    assert after.output is not None or after.result is not None
                case Failed():
                    assert event.attempt == state.attempt
                    assert event.attempt >= 1
            state = after
    if state.status is Status.EXPIRED:
        for command in [first, *rest]:
            with pytest.raises(DomainError):
                decide(command, state)


@pytest.mark.parametrize(
    "command", [ReportProgress(150), ReportProgress(-1), Fail("Tool Crashed", "x", True)]
)
def test_values_that_make_no_valid_event_are_a_domain_error_not_a_crash(command: Command) -> None:
    err = given(*RUNNING).when(command).then_raises(InvalidCommand)
    assert err.code == "invalid_command"
    assert str(err).startswith(f"{type(command).__name__}:")


# -- what the read side is told ------------------------------------------------------------------

# The owner's actions and the command each one sends (an owner's retry: within the attempts
# the failure recorded, the tool's 3 here when it recorded none).
OWNER_COMMANDS = {"cancel": "Cancel", "retry": "Retry", "delete": "Expire"}


@pytest.mark.parametrize("state", [s for s in STATES if s != "new"])
def test_the_actions_shown_are_the_commands_the_decider_accepts(state: str) -> None:
    """The read side asks ``actions`` instead of restating the rules: they must agree."""
    current = fold(STATES[state])
    shown = actions(
        current.status,
        has_output=current.output is not None,
        retry_pending=current.next_attempt_at is not None,
    )
    for action, command in OWNER_COMMANDS.items():
        if action == "retry":
            attempt = Retry(max_attempts=current.max_attempts or 3, by_owner=True)
            accepted = _accepts(attempt, current)
        else:
            accepted = _accepts(COMMANDS[command], current)
        assert (action in shown) == accepted, (state, action)
    assert ("download" in shown) == (current.status is Status.COMPLETED and bool(current.output))
    assert ("replay" in shown) == (current.status is not Status.EXPIRED)


def test_replay_needs_the_input_still_to_come_or_there() -> None:
    assert "replay" not in actions(Status.SUBMITTED, awaiting_input=True)
    assert "replay" in actions(Status.SUBMITTED)


def _accepts(command: Command, state: ExecutionState) -> bool:
    try:
        decide(command, state)
    except DomainError:
        return False
    return True


def test_the_decider_is_one_value_and_ends_where_a_run_ends() -> None:
    assert execution.initial_state() == initial_state()
    assert execution.fold(RUNNING) == fold(RUNNING)
    ends = {s for s, history in STATES.items() if execution.is_terminal(fold(history))}
    assert ends == {
        "completed",
        "failed, retryable",
        "failed, final",
        "failed, out of attempts",
        "cancelled",
        "expired",
    }


def test_a_failure_awaiting_its_automatic_retry_may_be_cancelled_and_a_final_one_not() -> None:
    due = NOW + timedelta(seconds=25)
    pending = Failed(
        code="timeout",
        message="slow",
        retryable=True,
        attempt=1,
        next_attempt_at=due,
        max_attempts=3,
    )
    given(*RUNNING, pending).when(Cancel("not any more")).then(Cancelled(reason="not any more"))
    assert actions(Status.FAILED, retry_pending=True)[:2] == ["cancel", "retry"]
    given(*RUNNING, failed()).when(Cancel("too late")).then_raises(IllegalTransition)
    assert "cancel" not in actions(Status.FAILED)


def test_lose_worker_fails_the_attempt_as_worker_lost_and_says_when_the_next_comes() -> None:
    [event] = decide(LoseWorker("worker-1", 1, next_attempt_at=NOW, max_attempts=3), fold(RUNNING))
    assert isinstance(event, Failed)
    assert (event.code, event.retryable, event.next_attempt_at, event.max_attempts) == (
        "worker_lost",
        True,
        NOW,
        3,
    )
