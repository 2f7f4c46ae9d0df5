"""The environment model's first two imagined steps, kept per start state.

Pure torch, no Ray. The environment model is frozen, so what it imagines from a start
state after a given first action, and after a given pair of actions, never changes.
Small boards repeat a lot: on Sokoban 5x5 a random policy meets ~3,750 distinct boards
in 320k steps, and 94-99% of the boards it sees were seen before. So `FirstStepsMemo`
keeps, per distinct start state, the A first imagined steps (computed when the state is
first seen) and each (first action, second action) step (computed the first time a
rollout takes it), and reads them back afterwards. The rollout policy still chooses the
second action every time (its weights train); steps after the second run as before.

The model runs at most once per imagined step of a call, as without the memo, over the
states and action pairs not yet kept (padded to a few batch sizes): results equal the
unmemoised ones up to float rounding, as with `once_per_distinct_row`. The
memo is emptied when the model's weights change (a parameter moved or replaced through
`load_state_dict`, or modified in place to other values; a weight sync that writes the
same values keeps it), and when it holds `max_states` states.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

import torch

from i2a_rllib.models.distinct import WeightsWatch, padded_count, padded_with_first, row_hashes

# States of at most this many values (small boards: Sokoban 5x5's 7 x 5 x 5 is 175) are
# memoised; large frames (Atari's) rarely repeat exactly, so their lookups would only cost.
MEMO_MAX_STATE_VALUES = 1024
# Memory per memo: states kept at most so that the memo's tensors stay under this size
# (Sokoban 5x5 at depth 2: ~10 KB per state, ~4,000 distinct boards per run: ~40 MB).
MEMO_MAX_BYTES = 256 * 1024 * 1024
# States the buffers first hold; they double as states arrive.
INITIAL_STATES = 256


# Where the EnvRunner's imagination travels and the learner replays it (rollouts of 2+
# steps), the model runs over at least this many states (copies of the first pad the
# rest): a one-state batch can take other oneDNN kernels, which round differently
# (~1e-4), and a snapped or quantised pixel near its threshold then differs between the
# runner and the learner's replay (tests/test_update_correctness.py). At depth 1 nothing
# travels (the learner imagines with its own memo), so an EnvRunner's call with one or
# two new boards runs them unpadded: the depth-1 I2A's exploring call on one new
# Sokoban board 1.48 -> 1.03 ms (the model's step ~0.8 -> ~0.3 ms).
REPLAY_MIN_ROWS = 8


def _padded(rows: torch.Tensor, min_rows: int) -> torch.Tensor:
    """`rows` padded to a few batch sizes (`padded_count`; every new batch size costs
    oneDNN's kernel setup), and to at least `min_rows`."""
    return padded_with_first(rows, max(min_rows, padded_count(len(rows))))


class FirstStepsMemo:
    """Per distinct start state: the A first imagined steps and the A x A second ones.

    `view_of` turns model states into what the rollout encoder reads (kept instead of
    the states, which are kept only where a third step needs them).
    """

    def __init__(
        self,
        env_model: torch.nn.Module,
        view_of: Callable[[torch.Tensor], torch.Tensor],
        keep_second_states: bool,
        max_bytes: int = MEMO_MAX_BYTES,
        min_rows: int = REPLAY_MIN_ROWS,
    ):
        self.env_model = env_model
        self.min_rows = int(min_rows)
        self.view_of = view_of
        self.keep_second_states = bool(keep_second_states)
        self.max_bytes = int(max_bytes)
        self.num_actions = int(env_model.num_actions)
        self.max_states = 0  # set with the buffers, from the first states' sizes
        self._buffers = None
        # States are handed out in the layout the model gave them (channels-last for
        # models kept so): convolutions over another layout round differently.
        self._layout = torch.contiguous_format
        self._slots = {}
        self._watch = WeightsWatch(env_model)
        self._weights_copy: List[torch.Tensor] = []

    @staticmethod
    def applies_to(env_model) -> bool:
        """Whether the memo can serve this model: states are small frames (boards repeat;
        vectors of floats rarely do), and the model imagines change."""
        return (
            env_model.states_are_frames
            and not env_model.observes_vectors
            and not env_model.imagines_no_change
            and math.prod(env_model.state_shape) <= MEMO_MAX_STATE_VALUES
        )

    def __len__(self) -> int:
        return len(self._slots)

    def clear(self) -> None:
        self._slots.clear()

    # --- Validity ---------------------------------------------------------------------
    def _check_weights(self) -> None:
        """Empties the memo when the model's weights are no longer those it was filled
        with. Reading versions costs little; values are compared only when one moved."""
        if not self._watch.moved():
            return
        tensors = self._watch.tensors()
        same = len(tensors) == len(self._weights_copy) and all(
            t.device == c.device and t.shape == c.shape and torch.equal(t.detach(), c)
            for t, c in zip(tensors, self._weights_copy)
        )
        if not same:
            self.clear()
            self._weights_copy = [t.detach().clone() for t in tensors]

    # --- Storage ----------------------------------------------------------------------
    def _allocate(self, rows, states, views, rewards) -> None:
        """Buffers for the first states, shaped and typed like them; they grow by
        doubling (`_reserve`) up to `max_states`, which `max_bytes` sets."""
        actions = self.num_actions
        per_state = (
            rows[0].numel() * rows.element_size()
            + actions * (states[0].numel() * states.element_size())
            + actions * (1 + actions) * (views[0].numel() * views.element_size() + 4 + 1)
            + (actions * actions * states[0].numel() * states.element_size() if self.keep_second_states else 0)
        )
        self.max_states = max(1, self.max_bytes // per_state)
        count = min(self.max_states, INITIAL_STATES)

        def empty(like, *shape):
            return like.new_empty((count, *shape, *like.shape[1:]))

        self._buffers = {
            "rows": empty(rows),
            "state1": empty(states, actions),
            "view1": empty(views, actions),
            "reward1": rewards.new_empty((count, actions), dtype=torch.float32),
            "view2": empty(views, actions, actions),
            "reward2": rewards.new_empty((count, actions, actions), dtype=torch.float32),
            "filled2": torch.zeros((count, actions, actions), dtype=torch.bool, device=rows.device),
        }
        if self.keep_second_states:
            self._buffers["state2"] = empty(states, actions, actions)

    def _reserve(self, count: int) -> None:
        """Room for `count` states (<= max_states): the buffers double as needed."""
        capacity = len(self._buffers["rows"])
        if count <= capacity:
            return
        capacity = min(self.max_states, max(count, 2 * capacity))
        kept = len(self._slots)
        for name, old in self._buffers.items():
            grown = old.new_empty((capacity, *old.shape[1:]))
            grown[:kept] = old[:kept]
            self._buffers[name] = grown

    # --- Lookups ----------------------------------------------------------------------
    def slots(self, state: torch.Tensor) -> Optional[torch.Tensor]:
        """Each start state's slot (B,), computing the first steps of states not seen
        before; None when the memo cannot serve this batch (a hash collision between
        different states: the caller imagines without the memo)."""
        self._check_weights()
        rows = state.flatten(1)
        if self._buffers is not None and self._buffers["rows"].device != rows.device:
            self._buffers = None
            self.clear()
        keys = row_hashes(rows).tolist()
        new = {key: index for index, key in enumerate(keys) if key not in self._slots}
        if self._buffers is not None and len(self._slots) + len(new) > self.max_states:
            self.clear()  # full: start over (exact; only costs recomputing)
            new = {key: index for index, key in enumerate(keys) if key not in self._slots}
            if len(new) > self.max_states:
                return None  # more new states than it holds: imagined without it
        if new and not self._fill_first_steps(state, rows, new):
            return None
        slots = torch.tensor([self._slots[key] for key in keys], device=rows.device)
        if not torch.equal(self._buffers["rows"][slots], rows):
            return None
        return slots

    def _fill_first_steps(self, state, rows, new) -> bool:
        """Keeps the first steps of the `new` states; False when the first batch brings
        more than the memo can hold (its size is known once the first states are)."""
        first = torch.tensor(list(new.values()), device=rows.device)
        count, actions = len(new), self.num_actions
        states, rewards = self.env_model.step_every_action(_padded(state[first], self.min_rows))
        states, rewards = states[: count * actions], rewards[: count * actions]
        views = self.view_of(states)
        if self._buffers is None:
            self._allocate(rows, states, views, rewards)
            if states.dim() == 4 and not states.is_contiguous():
                if states.is_contiguous(memory_format=torch.channels_last):
                    self._layout = torch.channels_last
        if len(self._slots) + len(new) > self.max_states:
            return False
        start = len(self._slots)
        self._reserve(start + len(new))
        slots = torch.arange(start, start + len(new), device=rows.device)
        for offset, key in enumerate(new):
            self._slots[key] = start + offset
        buffers = self._buffers
        buffers["rows"][slots] = rows[first]
        buffers["state1"][slots] = states.reshape(count, actions, *states.shape[1:])
        buffers["view1"][slots] = views.reshape(count, actions, *views.shape[1:])
        buffers["reward1"][slots] = rewards.float().reshape(count, actions)
        buffers["filled2"][slots] = False
        return True

    def first_steps(self, slots: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(states, views, rewards) of the first steps, rows b*A + a."""
        buffers = self._buffers
        states = buffers["state1"][slots].flatten(0, 1).contiguous(memory_format=self._layout)
        return states, buffers["view1"][slots].flatten(0, 1), buffers["reward1"][slots].flatten(0, 1)

    def second_steps(
        self, slots: torch.Tensor, actions: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(states or None, views, rewards) of the second steps, rows b*A + a: rollout a
        of state b took `actions[b*A + a]` second. Steps not yet memoised are computed."""
        num_actions = self.num_actions
        buffers = self._buffers
        first_action = torch.arange(num_actions, device=slots.device).repeat(slots.shape[0])
        pairs = (slots.repeat_interleave(num_actions) * num_actions + first_action) * num_actions
        pairs = pairs + actions.long()
        filled = buffers["filled2"].view(-1)
        missing = pairs[~filled[pairs]]
        if missing.numel():
            missing = missing.unique()
            start = buffers["state1"].flatten(0, 1)[missing // num_actions].contiguous(memory_format=self._layout)
            count = len(missing)
            states, rewards = self.env_model.step(
                _padded(start, self.min_rows), _padded(missing % num_actions, self.min_rows)
            )
            states, rewards = states[:count], rewards[:count]
            buffers["view2"].flatten(0, 2)[missing] = self.view_of(states)
            buffers["reward2"].view(-1)[missing] = rewards.float()
            if self.keep_second_states:
                buffers["state2"].flatten(0, 2)[missing] = states
            filled[missing] = True
        states = None
        if self.keep_second_states:
            states = buffers["state2"].flatten(0, 2)[pairs].contiguous(memory_format=self._layout)
        return states, buffers["view2"].flatten(0, 2)[pairs], buffers["reward2"].view(-1)[pairs]
