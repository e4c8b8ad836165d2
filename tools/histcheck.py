#!/usr/bin/env python3
"""histcheck: kvring's own history checker (per-key linearizability, Jepsen/Knossos style).

A test driver records every client operation it makes against the cluster (see `Recorder`), then this
module decides whether what the clients saw could have come from one linearizable key-value store.

History
-------
One operation per JSON line (extra fields such as "node", "proxy" or "status" are ignored):

    {"process": 3, "key": "k1", "f": "put", "value": "v17", "invoke": 12.5, "complete": 12.6,
     "outcome": "ok"}

- `process`: the client's id (int or str). `key`: str.
- `f`: "put", "get" or "del".
- `value`: for a put, the value written (a string; unique per key, see below). For a get, the value
  read, or null when the key was absent (HTTP 404). For an ok del, its answer: "present" (HTTP 200,
  the delete found the key) or "absent" (HTTP 404). Ignored for a get or del that did not end ok.
- `invoke`, `complete`: monotonic times in seconds (time.monotonic() of one machine). `complete` may
  be null or missing when the operation never completed; it is required when the outcome is "ok".
- `outcome`:
    - "ok": it happened, with the recorded result.
    - "fail": it certainly did not happen (a put or del whose error is known to mean "not done", a get
      that failed). Failed operations are dropped.
    - "info": unknown (a timeout, a 5xx). A put or del may have taken effect at any point after its
      invoke, even long after the client gave up: its completion is taken as +infinity. An info get
      tells nothing and is dropped.

Values written by puts (whatever their outcome) must be unique per key, and differ from the key's
initial value: a value read then names the one put that wrote it. A repeated value is a history
error, like a malformed line.

Model
-----
Each key is a register that is either absent (None, the initial state unless told otherwise) or holds
a string:

- put(v): state := v.
- get -> v: legal iff state == v (v None: the key is absent).
- del: the store's contract is that a delete is linearizable as a write (it stores a tombstone) and
  that its answer, 200 or 404, reports what a linearizable read made within the delete found; the read
  and the write need not be one atomic step. So an ok del is two steps over the same interval: a read
  answering "present" (legal iff state is not None) or "absent" (legal iff state is None), and a write
  of None. Other operations may come between the two, but the read comes first: a delete cannot find
  its own tombstone (else "absent" would always be possible). An info del is only the write of None.
  With `strict_delete` (a store where one owner applies a delete as one step) an ok del is a single
  atomic read-and-write instead: legal iff the state matched its answer, and then state := None.

Keys are independent (linearizability is local), so each key is checked on its own. Operation A
precedes B in real time iff A.complete < B.invoke (equal times count as concurrent).

Algorithm
---------
Wing & Gong's search with Lowe's memoization, with just-in-time linearization:

- A configuration is a set of linearized steps and a model state. From one, the candidates are the
  steps not linearized yet whose invoke is at or before the earliest completion among the ok steps not
  linearized yet (info steps complete at +infinity); a candidate the model allows is linearized.
- Depth-first, iterative (an explicit stack of configurations, no recursion). Success: every ok step
  is linearized (info writes may stay out forever: they may never have happened). Failure: nothing
  left to explore.
- Memoization (Lowe): a configuration explored before is not explored again; it failed (or is being
  explored). The set of linearized steps is a bitset, kept as (index of the first ok step not
  linearized, the bits above it) so a memo entry stays small on long histories.
- Sound reductions (each keeps a linearization if there is one; the self-test checks the result
  against a plain exhaustive search on thousands of small histories):
  - A read (get, or a del's read) that is legal now is taken at once, with no alternative: a read
    changes nothing, so it can be moved first in any linearization from here.
  - Values are unique, so once the state leaves a value it never comes back: a step overwriting a
    value that an ok get not linearized yet has read leads nowhere and is not taken.
  - An info write is only taken right before a read that needs it (legal with it, not without); any
    linearization can be put in that form, as an info write can always be moved later. An info write
    no read could ever observe is dropped beforehand.
  - Values no get reads are one value to the model (a token), and the info writes of None, or of such
    values, are interchangeable once invoked ("jokers"): a configuration counts how many of each sort
    it took, and is not explored when the same was explored having taken no more of each. When a
    first plain search takes long, a second one explores by rounds of jokers taken (fewest first).
- A budget bounds the configurations explored; past it the key is "unknown (budget exceeded)".

When a key fails, the failure is located. For a time t, H(t) is the key's history as a client knew
it at t: the operations invoked by t, those not completed by t turned into "info" (a get dropped, a
write that may or may not have happened). H(t) is linearizable for small t and, once it fails, fails
for every later t; it only changes when an ok operation completes. The search for the first ok
completion whose H fails starts from where the failed search of the whole history got to, and probes
forward (then bisects): that operation is reported as the offending one, with the operations just
before it and every operation concurrent with it.

Lost writes
-----------
The final read of a key is its last ok get, provided it began after every other ok operation of the
key completed. An acknowledged (ok) put P is lost when the final read returns a state strictly older
than P: the value read was written by an ok put that completed before P began, or the read found the
key absent and the absence is older than P (the initial state, or deletes that all completed before P
began; an info del could be later, so then nothing is reported). Either way P was certainly applied
before the final read and certainly overwritten by nothing newer, so a lost write is always also a
linearizability failure: "lost writes" only names that failure's most common form.
Operations that failed or ended in info are ignored when choosing the final read: they cannot make a
state older than P look newer.

Use
---
    python3 tools/histcheck.py HISTORY.jsonl [--strict-delete] [--json] [--budget N]

prints OK or FAIL per key and a summary line; exit status 0 when every key is linearizable, 1 when a
key is not (or could not be decided within the budget), 2 for a bad file. From Python:
`check_history(ops)` (dicts or `Op`s) returns a `Result`; `load_history(path)` reads a file.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple, Optional, Union

INF = math.inf
FUNCTIONS = ("put", "get", "del")
OUTCOMES = ("ok", "fail", "info")
PRESENT, ABSENT = "present", "absent"

#: Configurations explored per key before giving up with "unknown" (each costs some microseconds and
#: ~200 bytes of memo). Locating a failure may spend as much again.
DEFAULT_BUDGET = 1_000_000

#: How many operations before the offending one a failure report shows.
WINDOW_BEFORE = 10


class HistoryError(ValueError):
    """A malformed history: a bad line, a missing field, a value written twice. `line` is the 1-based
    line of the history file when known, `index` the operation's 0-based position otherwise."""

    def __init__(self, reason: str, line: Optional[int] = None, index: Optional[int] = None):
        super().__init__(reason)
        self.reason, self.line, self.index = reason, line, index

    def __str__(self) -> str:
        if self.line is not None:
            return f"line {self.line}: {self.reason}"
        if self.index is not None:
            return f"op #{self.index}: {self.reason}"
        return self.reason


def _fmt_time(t: Optional[float]) -> str:
    if t is None:
        return "?"
    return f"{t:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Op:
    """One client operation, as recorded. `line` is its line in the history file (None if it did not
    come from a file); `index` its position in the history."""

    process: Union[int, str]
    key: str
    f: str
    value: Any
    invoke: float
    complete: Optional[float]
    outcome: str
    line: Optional[int] = None
    index: int = 0

    @classmethod
    def from_dict(cls, d: dict, line: Optional[int] = None, index: int = 0) -> "Op":
        """Validates one history record; raises HistoryError naming the problem."""

        def bad(reason: str) -> HistoryError:
            return HistoryError(reason, line=line, index=index)

        if not isinstance(d, dict):
            raise bad("an operation must be a JSON object")
        for name in ("process", "key", "f", "invoke", "outcome"):
            if name not in d:
                raise bad(f'missing field "{name}"')
        process, key, f, outcome = d["process"], d["key"], d["f"], d["outcome"]
        if isinstance(process, bool) or not isinstance(process, (int, str)):
            raise bad('"process" must be an integer or a string')
        if not isinstance(key, str):
            raise bad('"key" must be a string')
        if f not in FUNCTIONS:
            raise bad(f'"f" must be one of put, get, del, not {json.dumps(f)}')
        if outcome not in OUTCOMES:
            raise bad(f'"outcome" must be one of ok, fail, info, not {json.dumps(outcome)}')

        def time_field(name: str) -> Optional[float]:
            t = d.get(name)
            if t is None:
                return None
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
                raise bad(f'"{name}" must be a finite number of seconds')
            return float(t)

        invoke, complete = time_field("invoke"), time_field("complete")
        if invoke is None:
            raise bad('"invoke" must be a finite number of seconds')
        if complete is None and outcome == "ok":
            raise bad('an ok operation needs a "complete" time')
        if complete is not None and complete < invoke:
            raise bad(f'"complete" ({complete!r}) is before "invoke" ({invoke!r})')

        value = d.get("value")
        if f == "put" and not isinstance(value, str):
            raise bad("a put's value must be a string")
        if f == "get" and outcome == "ok" and value is not None and not isinstance(value, str):
            raise bad("an ok get's value must be a string, or null for a key found absent")
        if f == "del" and outcome == "ok" and value not in (PRESENT, ABSENT):
            raise bad('an ok del\'s value must be "present" (200) or "absent" (404)')
        return cls(process, key, f, value, invoke, complete, outcome, line, index)

    def to_dict(self) -> dict:
        return {"process": self.process, "key": self.key, "f": self.f, "value": self.value,
                "invoke": self.invoke, "complete": self.complete, "outcome": self.outcome}

    def describe(self) -> str:
        """`process f value invoke..complete outcome`, plus the history line when known."""
        if self.f == "put":
            value = json.dumps(self.value)
        elif self.outcome != "ok":
            value = "-"   # a get or del that did not end ok has no answer
        else:
            value = self.value if self.f == "del" else json.dumps(self.value)
        text = f"{self.process} {self.f} {value} {_fmt_time(self.invoke)}..{_fmt_time(self.complete)} " \
               f"{self.outcome}"
        return text if self.line is None else f"{text}  [line {self.line}]"


# --------------------------------------------------------------------------------------------------
# The model, as the search sees it: each operation becomes one or two steps.

_WRITE = 0         # state := arg (None for a delete's write)
_READ = 1          # legal iff state == arg (arg None: absent)
_READ_PRESENT = 2  # legal iff state is not None (a del answered 200)
_RMW_PRESENT = 3   # strict del answered 200: legal iff state is not None; state := None
_RMW_ABSENT = 4    # strict del answered 404: legal iff state is None; state := None


class _Step(NamedTuple):
    kind: int
    arg: Any
    call: float
    ret: float    # INF for an info step
    info: bool    # may or may not have happened (only writes are ever info)
    op: Op


def _steps(ops: list[Op], strict: bool, cut: float = INF) -> list[_Step]:
    """The model steps of one key's history H(cut): the operations invoked by `cut`, those not
    completed ok by then being "info" (a get is then dropped, a write may or may not have happened)."""
    steps = []
    for op in ops:
        if op.outcome == "fail" or op.invoke > cut:
            continue
        pending = op.outcome == "info" or op.complete > cut
        ret = INF if pending else op.complete
        if op.f == "get":
            if not pending:
                steps.append(_Step(_READ, op.value, op.invoke, ret, False, op))
        elif op.f == "put":
            steps.append(_Step(_WRITE, op.value, op.invoke, ret, pending, op))
        elif strict and not pending:
            kind = _RMW_PRESENT if op.value == PRESENT else _RMW_ABSENT
            steps.append(_Step(kind, None, op.invoke, ret, False, op))
        else:
            # A del: if its answer is known, the read it made (which must precede its own write, see
            # _search), then its write of None.
            if not pending:
                kind = _READ_PRESENT if op.value == PRESENT else _READ
                steps.append(_Step(kind, None, op.invoke, ret, False, op))
            steps.append(_Step(_WRITE, None, op.invoke, ret, pending, op))
    return _drop_unobservable(steps)


def _drop_unobservable(steps: list[_Step]) -> list[_Step]:
    """Drops info writes no read could ever observe. Sound: in a linearization containing such a write
    W, the stretch between W and the next write holds no read (a read there would have observed W), so
    removing W leaves every read legal."""
    read_values = {s.arg for s in steps if s.kind == _READ and s.arg is not None}
    last_present = max((s.ret for s in steps if s.kind in (_READ_PRESENT, _RMW_PRESENT)), default=-INF)
    last_absent = max((s.ret for s in steps if s.kind == _RMW_ABSENT or (s.kind == _READ and s.arg is None)),
                      default=-INF)

    def observable(s: _Step) -> bool:   # (a read ending when the write begins is concurrent with it)
        if s.arg is None:   # a delete: seen only by a read finding the key absent, after its invoke
            return last_absent >= s.call
        return s.arg in read_values or last_present >= s.call

    return [s for s in steps if not s.info or observable(s)]


_FREE = object()   # a configuration's `before` when its last step was not an info write
_SOME = object()   # the search's stand-in for every value that no get reads


def _dominated(taken: Optional[list[tuple[int, int]]], nones: int, somes: int) -> bool:
    """Whether a configuration that took `nones` and `somes` jokers is no freer than one seen, which
    took those in `taken`."""
    if taken:
        for n, s in taken:
            if n <= nones and s <= somes:
                return True
    return False


def _decide(steps: list[_Step], initial: Optional[str], budget: int) -> tuple[Optional[bool], int, float]:
    """_search, in two rounds when the history has jokers (see _search): first plainly depth-first,
    quickest to find a linearization when there is one; if that takes long, with the jokers deferred,
    quickest to go through every configuration when there is none."""
    read_values = _read_values(steps)
    if not any(s.info and (s.arg is None or s.arg not in read_values) for s in steps):
        return _search(steps, initial, budget, defer_jokers=False)
    first = min(budget, max(20_000, 10 * len(steps)))
    verdict, explored, reach = _search(steps, initial, first, defer_jokers=False)
    if verdict is not None or explored >= budget:
        return verdict, explored, reach
    verdict, more, reach2 = _search(steps, initial, budget - explored, defer_jokers=True)
    return verdict, explored + more, max(reach, reach2)


def _read_values(steps: list[_Step]) -> set:
    return {s.arg for s in steps if s.kind == _READ}


def _search(steps: list[_Step], initial: Optional[str], budget: int, defer_jokers: bool = True
            ) -> tuple[Optional[bool], int, float]:
    """Wing & Gong's search with Lowe's memo (see the module docstring) over one key's steps.

    Returns (True if linearizable, False if not, None if `budget` configurations were explored first;
    configurations explored; `reach`). `reach` is the latest time t such that a configuration reached
    had linearized every ok step completing before t (on failure the history is linearizable up to
    there, see _locate_failure)."""
    ok_steps = sorted((s for s in steps if not s.info), key=lambda s: s.call)
    info_steps = sorted((s for s in steps if s.info), key=lambda s: s.call)
    n_ok, n_info = len(ok_steps), len(info_steps)
    if not n_ok:
        return True, 0, INF

    # Values that no get reads differ from each other for nothing but the memo: writes of them all
    # write one token, so configurations that differ only there are one.
    read_values = _read_values(steps)

    def token(value: Any) -> Any:
        return _SOME if value is not None and value not in read_values else value

    # The ok steps, by invoke time: step i is bit i of the set of linearized steps.
    kind = [s.kind for s in ok_steps]
    arg = [token(s.arg) if s.kind == _WRITE else s.arg for s in ok_steps]
    call = [s.call for s in ok_steps]
    ret = [s.ret for s in ok_steps]
    later_ret = [INF] * (n_ok + 1)   # later_ret[i]: the earliest return of the steps from i on
    for i in range(n_ok - 1, -1, -1):
        later_ret[i] = min(ret[i], later_ret[i + 1])
    # An ok del's write of None comes after the read it made (a delete cannot find its own
    # tombstone): needs[i] is the ok step that must be linearized before ok step i, or -1.
    del_read = {id(s.op): i for i, s in enumerate(ok_steps) if s.op.f == "del" and s.kind != _WRITE}
    needs = [del_read.get(id(s.op), -1) if s.kind == _WRITE else -1 for s in ok_steps]
    # Values are unique, so once the state leaves a value it never comes back: a step that overwrites
    # the state while an ok get of it is still to be linearized leads nowhere. gets_of[v]: the ok
    # gets of v.
    gets_of: dict[Any, list[int]] = {}
    for i, s in enumerate(ok_steps):
        if s.kind == _READ and s.arg is not None:
            gets_of.setdefault(s.arg, []).append(i)

    def unread(value: Any, low: int, win: int) -> bool:
        """Whether an ok get of `value` is still to be linearized."""
        gets = gets_of.get(value)
        if gets:
            for n in range(bisect.bisect_left(gets, low), len(gets)):
                if not (win >> (gets[n] - low)) & 1:
                    return True
        return False

    # The info steps (writes only), by invoke time: step j is bit j of another set. Info writes of
    # None, or of an unread value, are interchangeable once invoked: a configuration counts how many
    # of each sort it took ("jokers"), not which. The others (a value some get read) are told apart.
    info_arg = [token(s.arg) for s in info_steps]
    info_call = [s.call for s in info_steps]
    joker = [a is None or a is _SOME for a in info_arg]

    def earliest_return(low: int, win: int) -> float:
        """The earliest return among the ok steps not linearized: only steps invoked by then may be
        linearized next (just-in-time linearization)."""
        width = win.bit_length()
        earliest = later_ret[min(low + width, n_ok)]
        pending = ~win & ((1 << width) - 1)
        while pending:
            bit = pending & -pending
            pending ^= bit
            r = ret[low + bit.bit_length() - 1]
            if r < earliest:
                earliest = r
        return earliest

    # A configuration: (low, win, infos, own, nones, somes, state, before, earliest).
    # - The ok steps below `low` are linearized; bit j of `win` says whether step low + j is (bit 0 is
    #   always clear). `earliest` is earliest_return(low, win), kept up to date.
    # - Bit j of `infos` says whether info step j is linearized; `own` keeps the bits of the info
    #   writes told apart, `nones` and `somes` count the jokers taken.
    # - `state` is the model's (values no get reads as _SOME).
    # - `before` is _FREE, or the state before the info write just taken: an info write is only worth
    #   taking right before a read that needs it (legal after it, illegal before it). Any
    #   linearization can be put in that form: an info write may move later past any operation (it
    #   has no completion), so past the reads that do not need it, and be dropped when a write or the
    #   end comes next.
    #
    # The memo (Lowe): a configuration explored before is not explored again (its subtree failed, or
    # is being explored). Nor is one whose same was explored having taken no more jokers of each sort
    # (jokers left can only help), or, right after an info write, without that constraint.
    # seen0: the configurations explored without jokers; seen: the others, as rest -> [(nones, somes)].
    seen0: set = set()
    seen: dict[tuple, list[tuple[int, int]]] = {}
    explored, reach = 0, -INF

    # Depth-first, over an explicit stack of configurations to explore. With `defer_jokers`,
    # configurations that took one joker more wait for the next round (levels[k]: those that took k
    # jokers), so that whatever can be done with fewer jokers is seen first and prunes the same done
    # with more; without, a joker is tried after the ok steps, like an ok step.
    levels: list[list[tuple]] = [[(0, 0, 0, 0, 0, 0, token(initial), _FREE, later_ret[0])]]
    level = 0
    while level < len(levels):
        stack = levels[level]
        while stack:
            config = stack.pop()
            low, win, infos, own, nones, somes, state, before, earliest = config
            rest = (low, win, own, state, before)
            if rest in seen0 or (before is not _FREE and (low, win, own, state, _FREE) in seen0):
                continue
            if nones or somes:
                if _dominated(seen.get(rest), nones, somes) or (
                        before is not _FREE and
                        _dominated(seen.get((low, win, own, state, _FREE)), nones, somes)):
                    continue
                seen.setdefault(rest, []).append((nones, somes))
            else:
                seen0.add(rest)
            explored += 1
            if explored > budget:
                return None, explored, reach
            if earliest > reach:
                reach = earliest

            # The candidates: ok steps invoked by `earliest`, not linearized yet. A get (or a del's
            # read) that is legal now is taken at once, without trying anything else: if the
            # configuration has a linearization, it has one starting with that read (a read changes
            # nothing, and a candidate may come first as far as real time goes).
            # Meanwhile, note what the reads that are not legal yet would need: values (`wanted`), the
            # key present, the key absent.
            candidates = []   # the window's pending steps (its clear bits), then those after it
            width = win.bit_length()
            pending = ~win & ((1 << width) - 1)
            while pending:
                bit = pending & -pending
                i = low + bit.bit_length() - 1
                if call[i] > earliest:
                    break
                candidates.append(i)
                pending ^= bit
            else:
                i = low + width
                while i < n_ok and call[i] <= earliest:
                    candidates.append(i)
                    i += 1
            writes, wanted = [], set()
            taken, want_present, want_absent = -1, False, False
            for i in candidates:
                k = kind[i]
                if k == _READ:
                    a = arg[i]
                    if state == a and (before is _FREE or before != a):
                        taken = i
                        break
                    if a is None:
                        want_absent = True
                    else:
                        wanted.add(a)
                elif k == _READ_PRESENT:
                    if state is not None and (before is _FREE or before is None):
                        taken = i
                        break
                    want_present = True
                else:
                    writes.append(i)
                    if k == _RMW_PRESENT:
                        want_present = True
                    elif k == _RMW_ABSENT:
                        want_absent = True
            if taken >= 0:
                children = [(taken, state)]
            else:
                children = []
                for i in writes:
                    k = kind[i]
                    if k == _WRITE:
                        d = needs[i]
                        if (before is _FREE and (d < low or (win >> (d - low)) & 1) and
                                not unread(state, low, win)):
                            children.append((i, arg[i]))
                    elif k == _RMW_PRESENT:   # (right after an info write: only if it needs it)
                        if state is not None and (before is _FREE or before is None) and \
                                not unread(state, low, win):
                            children.append((i, None))
                    elif k == _RMW_ABSENT:
                        if state is None and (before is _FREE or before is not None):
                            children.append((i, None))
                # The info writes invoked by then that a read waiting here would need: tried after the
                # ok steps (pushed first). Of the jokers, one of each sort is enough.
                need_none = want_absent and state is not None
                need_some = want_present and state is None
                if (before is _FREE and (wanted or need_none or need_some) and n_info and
                        info_call[0] <= earliest and not unread(state, low, win)):
                    j = 0
                    while j < n_info and info_call[j] <= earliest:
                        bit = 1 << j
                        if not infos & bit:
                            a = info_arg[j]
                            if not joker[j]:
                                if a in wanted or need_some:
                                    stack.append((low, win, infos | bit, own | bit, nones, somes, a, state,
                                                  earliest))
                            elif (need_none if a is None else need_some):
                                if not defer_jokers:
                                    later = stack
                                elif len(levels) == level + 1:
                                    later = []
                                    levels.append(later)
                                else:
                                    later = levels[level + 1]
                                later.append((low, win, infos | bit, own, nones + (a is None),
                                              somes + (a is _SOME), a, state, earliest))
                                if a is None:
                                    need_none = False
                                else:
                                    need_some = False
                        j += 1
                children.reverse()   # so that the first candidate is explored first

            for i, new_state in children:
                j = i - low
                new_win, new_low = win | (1 << j), low
                if j == 0:   # the first pending ok step is done: slide the window past the done ones
                    ones = ((new_win + 1) & ~new_win).bit_length() - 1
                    new_win >>= ones
                    new_low += ones
                    if new_low == n_ok:
                        return True, explored, INF
                new_earliest = earliest if ret[i] != earliest else earliest_return(new_low, new_win)
                stack.append((new_low, new_win, infos, own, nones, somes, new_state, _FREE, new_earliest))
        level += 1
    return False, explored, reach


# --------------------------------------------------------------------------------------------------
# Results.

@dataclass
class KeyResult:
    """The verdict on one key. `status` is "ok", "fail" or "unknown" (budget exceeded). On failure,
    `offending` is the operation whose completion first made the history non-linearizable and `window`
    the operations shown around it (`window_minimal` False if the bisection ran out of budget, so the
    failure may start earlier)."""

    key: str
    n_ops: int
    status: str
    explored: int
    offending: Optional[Op] = None
    window: list[Op] = field(default_factory=list)
    window_minimal: bool = True
    window_hidden: int = 0               # info ops left out of the window (given up on before)
    writer_note: Optional[str] = None    # who wrote the value the offending get read
    final_read: Optional[Op] = None
    lost_writes: list[Op] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def report(self) -> str:
        """The key's verdict line and, when it failed, its failing window and anomalies."""
        if self.status == "ok":
            head = "OK"
        elif self.status == "fail":
            head = "FAIL (not linearizable)"
        else:
            head = "UNKNOWN (budget exceeded)"
        lines = [f"key {json.dumps(self.key)}: {head}: {self.n_ops} ops checked, "
                 f"{self.explored} configurations explored"]
        if self.offending is not None:
            x = self.offending
            lines.append("  first failure: the history is linearizable until this op completes, not after:")
            lines.append(f"    {x.describe()}")
            if self.writer_note:
                lines.append(f"  {self.writer_note}")
            note = "" if self.window_minimal else " (budget exceeded while narrowing: may start earlier)"
            lines.append(f"  the last {WINDOW_BEFORE} ops invoked by then and every op concurrent with it{note}:")
            for op in self.window:
                mark = "   <-- offending op" if op is x else ""
                lines.append(f"    {op.describe()}{mark}")
            if self.window_hidden:
                lines.append(f"    (and {self.window_hidden} earlier ops of unknown outcome, not shown)")
        for a in self.anomalies:
            lines.append(f"  {a}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"status": self.status, "ops": self.n_ops, "explored": self.explored,
                "offending": self.offending.describe() if self.offending else None,
                "window": [op.describe() for op in self.window],
                "lost_writes": [op.describe() for op in self.lost_writes],
                "anomalies": self.anomalies}


@dataclass
class Result:
    """The verdict on a whole history: one KeyResult per key."""

    keys: dict[str, KeyResult]
    n_ops: int

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.keys.values())

    @property
    def failed_keys(self) -> list[str]:
        return [k for k, r in self.keys.items() if r.status == "fail"]

    @property
    def unknown_keys(self) -> list[str]:
        return [k for k, r in self.keys.items() if r.status == "unknown"]

    @property
    def lost_writes(self) -> list[Op]:
        return [op for r in self.keys.values() for op in r.lost_writes]

    @property
    def anomalies(self) -> list[str]:
        return [f"key {json.dumps(k)}: {a}" for k, r in self.keys.items() for a in r.anomalies]

    def summary(self) -> str:
        text = (f"checked {self.n_ops} ops on {len(self.keys)} keys: {len(self.failed_keys)} keys not "
                f"linearizable, {len(self.lost_writes)} lost writes")
        if self.unknown_keys:
            text += f", {len(self.unknown_keys)} keys unknown (budget exceeded)"
        return text

    def report(self) -> str:
        return "\n".join([r.report() for r in self.keys.values()] + [self.summary()])

    def to_json(self) -> dict:
        return {"ops": self.n_ops, "keys": len(self.keys), "failed_keys": self.failed_keys,
                "unknown_keys": self.unknown_keys, "lost_writes": len(self.lost_writes),
                "anomalies": self.anomalies,
                "details": {k: r.to_json() for k, r in self.keys.items()}}


# --------------------------------------------------------------------------------------------------
# Checking.

def _final_read_and_lost_writes(ops: list[Op], initial: Optional[str]) -> tuple[Optional[Op], list[Op]]:
    """The key's final read and the acknowledged puts it shows lost (definition: module docstring)."""
    ok = [op for op in ops if op.outcome == "ok"]
    if not ok:
        return None, []
    last = max(ok, key=lambda op: (op.invoke, op.index))
    if last.f != "get" or any(op is not last and op.complete >= last.invoke for op in ok):
        return None, []
    final = last
    if final.value is None:
        # The absence comes from the initial state or from a delete: find when it was last made.
        dels = [op for op in ops if op.f == "del" and op.outcome != "fail"]
        if any(op.outcome == "info" for op in dels):
            return final, []   # that delete may have landed at any time, after any put
        if dels:
            source_end = max(op.complete for op in dels)
        elif initial is None:
            source_end = -INF
        else:
            return final, []   # absent, yet nothing deleted the key: not a lost write (search fails)
    else:
        writer = next((op for op in ops if op.f == "put" and op.value == final.value), None)
        if writer is None:
            if final.value != initial:
                return final, []   # a value nobody wrote: reported as an anomaly
            source_end = -INF
        elif writer.outcome != "ok":
            return final, []   # an info put lands at an unknown time; a failed one is another anomaly
        else:
            source_end = writer.complete
    lost = [op for op in ok if op.f == "put" and op.invoke > source_end]
    return final, lost


def _locate_failure(ops: list[Op], strict: bool, initial: Optional[str], budget: int, reach: float
                    ) -> tuple[Op, bool]:
    """Finds the first ok completion time c at which H(c) (see _steps) is not linearizable, and returns
    the operation completing then, and whether the answer is exact (False if the budget ran out while
    narrowing: the operation is then a later one, whose H(c) is known to fail).

    H(t) changes only when an ok operation completes, and once not linearizable stays so: a search
    over the ok completion times. The failed search of the whole history gives a head start: it reached
    a configuration with every ok operation completing before `reach` linearized, and such a prefix is
    a linearization of H(t) for any t < reach. So c >= reach, and usually close: the search's
    prunings hide only prefixes that leave a get of an overwritten value behind. A probe that passes
    is cheap, one that fails explores everything up to the failure: so the probes step one completion
    at a time from there (16 probes, then 2, 4, 8... completions at a time), then bisect once one
    fails."""
    cuts = sorted({op.complete for op in ops if op.outcome == "ok"})
    lo = sum(1 for c in cuts if c < reach) - 1   # H(cuts[lo]) is linearizable (lo = -1: nothing done)
    hi = len(cuts) - 1                            # H(cuts[-1]) is the whole history: known to fail
    spent, exact, probes, stepping = 0, True, 0, True
    while hi - lo > 1 and spent < budget:
        if stepping:
            mid = min(lo + (1 if probes < 16 else 2 ** (probes - 15)), hi - 1)
        else:
            mid = (lo + hi) // 2
        probes += 1
        verdict, explored, _ = _decide(_steps(ops, strict, cuts[mid]), initial, budget - spent)
        spent += explored
        if verdict is False:
            hi, stepping = mid, False
        else:   # (unknown counts as linearizable: hi stays a cut known to fail, maybe not the first)
            lo = mid
            exact = exact and verdict is True
    exact = exact and hi - lo <= 1
    offending = min((op for op in ops if op.outcome == "ok" and op.complete == cuts[hi]),
                    key=lambda op: (op.invoke, op.index))
    return offending, exact


def _window(ops: list[Op], x: Op) -> tuple[list[Op], int]:
    """The last WINDOW_BEFORE ops invoked by x's completion, and every op concurrent with x; and the
    number of info ops left out: those the client gave up on before x began (their effect may still
    land at any time, but listing every old timeout would drown the window)."""
    prefix = [op for op in ops if op.invoke <= x.complete]
    shown = {id(op) for op in prefix[-WINDOW_BEFORE:]}
    shown |= {id(op) for op in prefix if op.complete is None or op.complete >= x.invoke}
    hidden = sum(1 for op in prefix if op.outcome == "info" and id(op) not in shown)
    return [op for op in prefix if id(op) in shown], hidden


def _check_key(key: str, ops: list[Op], strict: bool, initial: Optional[str], budget: int) -> KeyResult:
    ops = sorted(ops, key=lambda op: (op.invoke, op.index))
    verdict, explored, reach = _decide(_steps(ops, strict), initial, budget)
    status = {True: "ok", False: "fail", None: "unknown"}[verdict]
    result = KeyResult(key, len(ops), status, explored)
    puts = {op.value: op for op in ops if op.f == "put"}

    for op in ops:
        if op.f == "get" and op.outcome == "ok" and op.value is not None and op.value != initial:
            writer = puts.get(op.value)
            if writer is None:
                result.anomalies.append(f"read of a value no put wrote: {op.describe()}")
            elif writer.outcome == "fail":
                result.anomalies.append(f"read of a failed put's value: {op.describe()} "
                                        f"(written by {writer.describe()})")
    result.final_read, result.lost_writes = _final_read_and_lost_writes(ops, initial)
    for op in result.lost_writes:
        reads = sum(1 for g in ops if g.f == "get" and g.outcome == "ok" and g.value == op.value)
        seen = "never read" if not reads else f"read {reads} times before"
        result.anomalies.append(f"lost write: {op.describe()} ({seen}; the final read "
                                f"{result.final_read.describe()} returned an older state)")
    if status == "unknown":
        result.anomalies.append(f"unknown: more than {budget} configurations explored")
    if status == "fail":
        x, result.window_minimal = _locate_failure(ops, strict, initial, budget, reach)
        result.offending = x
        result.window, result.window_hidden = _window(ops, x)
        if x.f == "get" and x.value is not None:
            writer = puts.get(x.value)
            if writer is not None:
                result.writer_note = f"{json.dumps(x.value)} was written by: {writer.describe()}"
            elif x.value == initial:
                result.writer_note = f"{json.dumps(x.value)} is the key's initial value"
            else:
                result.writer_note = f"no put wrote {json.dumps(x.value)}"
    return result


def _to_ops(ops: Iterable[Union[Op, dict]]) -> list[Op]:
    out = []
    for index, op in enumerate(ops):
        if isinstance(op, Op):
            out.append(op if op.index == index else dataclasses.replace(op, index=index))
        else:
            out.append(Op.from_dict(op, index=index))
    return out


def _where(op: Op) -> str:
    return f"line {op.line}" if op.line is not None else f"op #{op.index}"


def check_history(ops: Iterable[Union[Op, dict]], strict_delete: bool = False,
                  initial: Optional[dict[str, Optional[str]]] = None,
                  budget: int = DEFAULT_BUDGET) -> Result:
    """Checks a history (Op objects, or dicts in the file's format) key by key.

    `strict_delete`: model an ok del as one atomic read-and-write (single-owner store) instead of a
    read then a write within its interval. `initial`: a key's value before the history (a string, or
    None for absent, the default). `budget`: configurations explored per key before it is "unknown"
    (locating a failure may spend as much again).
    Raises HistoryError for a malformed operation or a put value written twice for one key."""
    ops = _to_ops(ops)
    initial = initial or {}
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)

    # Values written by puts must be unique per key (and differ from the initial value).
    for key, key_ops in by_key.items():
        writers: dict[str, Op] = {}
        for op in key_ops:
            if op.f != "put":
                continue
            if op.value == initial.get(key):
                raise HistoryError(f"put of {json.dumps(op.value)} to key {json.dumps(key)} writes the "
                                   f"key's initial value (values written must be unique per key)",
                                   line=op.line, index=op.index)
            if op.value in writers:
                raise HistoryError(f"put of {json.dumps(op.value)} to key {json.dumps(key)}: the value "
                                   f"was already written by the put at {_where(writers[op.value])} "
                                   f"(values written must be unique per key)", line=op.line, index=op.index)
            writers[op.value] = op

    results = {key: _check_key(key, by_key[key], strict_delete, initial.get(key), budget)
               for key in sorted(by_key)}
    return Result(results, len(ops))


def load_history(path: str) -> list[Op]:
    """Reads a JSON-lines history (blank lines are skipped). Raises HistoryError with the line."""
    ops = []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise HistoryError(f"invalid JSON: {e.msg} (column {e.colno})", line=number) from None
            ops.append(Op.from_dict(record, line=number, index=len(ops)))
    return ops


# --------------------------------------------------------------------------------------------------
# Recording.

class Recorder:
    """Records a test driver's operations, from any number of threads.

        h = rec.invoke(process, key, "get")          # just before sending the request
        status, value = client.get(key)
        rec.complete(h, "ok", value if status == 200 else None)   # just after the answer

    For a put, pass the value to invoke(); for a get, the value read to complete() (None: absent); for
    a del, its answer "present" or "absent" to complete() (for a put, complete()'s value is ignored).
    The outcome is "ok", "fail" (certainly not
    done) or "info" (unknown: a timeout, a 5xx); an operation never completed is recorded as "info".
    Extra keyword arguments (node=..., status=...) are stored as extra fields. Times come from
    `clock` (time.monotonic): invoke is read before the operation is recorded and complete on entry,
    so an interval can only be wider than the true one, which keeps the check sound."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: list[dict] = []

    def invoke(self, process: Union[int, str], key: str, f: str, value: Any = None, **extra) -> int:
        t = self._clock()
        if f not in FUNCTIONS:
            raise ValueError(f"f must be one of {FUNCTIONS}, not {f!r}")
        op = {"process": process, "key": key, "f": f, "value": value if f == "put" else None,
              "invoke": t, "complete": None, "outcome": None, **extra}
        with self._lock:
            self._ops.append(op)
            return len(self._ops) - 1

    def complete(self, handle: int, outcome: str, value: Any = None, **extra) -> None:
        t = self._clock()
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
        with self._lock:
            op = self._ops[handle]
            if op["outcome"] is not None:
                raise ValueError(f"operation {handle} was already completed")
            op.update(extra)
            op["complete"], op["outcome"] = t, outcome
            if op["f"] != "put":
                op["value"] = value

    def ops(self) -> list[dict]:
        """A copy of the history so far; operations not completed yet are "info"."""
        with self._lock:
            return [dict(op, outcome=op["outcome"] or "info") for op in self._ops]

    def dump(self, path: str) -> None:
        """Writes the history as JSON lines."""
        with open(path, "w", encoding="utf-8") as f:
            for op in self.ops():
                f.write(json.dumps(op) + "\n")


# --------------------------------------------------------------------------------------------------
# Command line.

def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="histcheck", description="Checks a kvring history (JSON lines) for per-key linearizability.",
        epilog="Exit status: 0 all keys linearizable, 1 a key is not (or is unknown), 2 a bad file.")
    parser.add_argument("history", help="the history file, one JSON operation per line")
    parser.add_argument("--strict-delete", action="store_true",
                        help="model a del as one atomic read-and-write (single-owner store)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of the report")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                        help=f"configurations explored per key before giving up (default {DEFAULT_BUDGET})")
    args = parser.parse_args(argv)
    try:
        ops = load_history(args.history)
        result = check_history(ops, strict_delete=args.strict_delete, budget=args.budget)
    except OSError as e:
        print(f"histcheck: {args.history}: {e.strerror or e}", file=sys.stderr)
        return 2
    except HistoryError as e:
        where = f"{args.history}:{e.line}" if e.line is not None else args.history
        print(f"histcheck: {where}: {e.reason}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
