"""Batched Sokoban, the planning task of the I2A paper (Weber et al. 2017, arXiv 1707.06203).

Pure numpy + gymnasium: `SokobanVectorEnv` steps N boards at once with array operations
and resets finished boards itself (gymnasium's NEXT_STEP autoreset), `SokobanEnv` is the
single-board `gymnasium.Env` for `gym.make("I2A/Sokoban-v0")`, and `make_vector_env` is
the creator RLlib calls with `env_config | {"num_envs": N}`.

Levels are generated like DeepMind's Boxoban / gym-sokoban: a random walk carves a room
inside a wall border, targets and the player are placed on its floor with every box on
its target (the solved state), and *reverse play* (the player walks and pulls boxes
backwards) turns the solved state into the start state. Every level is therefore
solvable by construction; `SokobanLevel.reverse_trace` keeps the reverse moves, and
`SokobanLevel.forward_solution` replays them forward. Unlike gym-sokoban, a level in
which no box was pulled or every box still sits on a target ("score == 0") is rejected
and regenerated (at most `MAX_GENERATION_ATTEMPTS` times, then `RuntimeError`).
Instead of gym-sokoban's depth-first search over reverse moves, the generator keeps the
best of a few random reverse-play rollouts and redraws rooms (a bounded number of
times) until at least 3/4 of the boxes start off target; a random agent then solves
~1% of 10x10 / 4-box levels within 120 steps (~10% without that preference).

Generation costs ~0.8 ms per 10x10 level in pure Python, small next to an episode of
steps, so finished boards get a fresh level on the spot (no pool), drawn from that
board's own `numpy.random.Generator`: board i of `SokobanVectorEnv(seed=s)` plays
exactly the levels of a single env seeded with s + i (gymnasium's `SyncVectorEnv`
convention).

Observation (default, `observation="channels"`): uint8 (7, H, W), one channel per cell
type in `CHANNELS`, 255 where present and 0 elsewhere. `observation="rgb"` gives the
paper-style picture instead: uint8 (3, H * rgb_scale, W * rgb_scale), e.g. 80x80 for a
10x10 room at the default scale 8.

Actions (`Discrete(5)`): 0 no-op, 1 up, 2 down, 3 left, 4 right. Moving into a box
pushes it when the cell behind it is free (floor or target); moving into a wall or a box
that cannot move is a blocked move (nothing changes; the step penalty still applies).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from i2a_rllib.envs.board import (
    ACTION_MOVES,
    ACTION_NAMES,
    OPPOSITE_ACTION,
    BoardVectorEnv,
    SingleBoardEnv,
    ascii_rows,
    check_enclosed,
    grid_to_ascii,
    make_board_vector_env,
    tile_boards,
)
from i2a_rllib.envs.settings import check_choice, check_int, is_int

# ---------------------------------------------------------------------------------------
# Hyper-parameters (paper / gym-sokoban values unless noted).
# ---------------------------------------------------------------------------------------
DEFAULT_DIM_ROOM = (10, 10)
DEFAULT_NUM_BOXES = 4
DEFAULT_MAX_STEPS = 120
# Reverse-play moves per level = int(GEN_STEPS_PER_SIDE * (H + W)): 100 for 10x10.
GEN_STEPS_PER_SIDE = 5.0
# Random-walk steps that carve the room = int(WALK_STEPS_PER_SIDE * (H + W)) (what
# gym-sokoban calls `num_gen_steps`), but at least WALK_STEPS_PER_BOX * num_boxes so
# that rooms crowded with boxes still get enough floor.
WALK_STEPS_PER_SIDE = 1.7
WALK_STEPS_PER_BOX = 3
# gym-sokoban: probability that the carving walk changes direction at a step.
P_CHANGE_DIRECTION = 0.35
# Probability that a reverse move pulls the box behind the player (when there is one).
P_PULL = 0.8
# Reverse play is tried this many times per room and the "hardest" rollout is kept: the
# most boxes off target, then gym-sokoban's score (box switches x total box
# displacement). A cheap stand-in for gym-sokoban's depth-first search.
REVERSE_PLAY_ROLLOUTS = 8
# A level should start with at least this fraction of its boxes off target (rounded
# down, at least 1): with fewer, a random agent solves ~10% of 10x10 levels by chance.
MIN_OFF_TARGET_FRACTION = 0.75
# Rooms are redrawn until one meets MIN_OFF_TARGET_FRACTION; after this many rooms the
# hardest valid level seen so far is taken (crowded settings may never meet it).
PREFERRED_ATTEMPTS = 10
# Rooms whose reverse play moved nothing are thrown away; after this many, give up.
MAX_GENERATION_ATTEMPTS = 100
MIN_ROOM_SIDE = 5
# At most one box per this many interior cells (the interior of a 10x10 room has 64).
INTERIOR_CELLS_PER_BOX = 4

REWARD_STEP = -0.1
REWARD_BOX_ON_TARGET = 1.0
REWARD_BOX_OFF_TARGET = -1.0
REWARD_SOLVED = 10.0

# Observation channels; a board cell's "code" is the index of its channel.
CHANNELS = (
    "wall",
    "floor",
    "target",
    "box_off_target",
    "box_on_target",
    "player",
    "player_on_target",
)
WALL, FLOOR, TARGET, BOX, BOX_ON_TARGET, PLAYER, PLAYER_ON_TARGET = range(len(CHANNELS))
# Standard Sokoban notation ('-' and '_' are accepted as floor too).
ASCII_OF_CODE = ("#", " ", ".", "$", "*", "@", "+")
CODE_OF_ASCII = {char: code for code, char in enumerate(ASCII_OF_CODE)} | {"-": FLOOR, "_": FLOOR}

DEFAULT_RGB_SCALE = 8
# Colours of the "rgb" observation, per cell code.
RGB_COLOURS = np.array(
    [
        [40, 40, 40],  # wall
        [230, 230, 220],  # floor
        [230, 120, 120],  # target (drawn as a square on floor)
        [150, 110, 50],  # box off target
        [240, 170, 40],  # box on target
        [70, 170, 70],  # player
        [70, 170, 70],  # player on target (drawn over a target square)
    ],
    dtype=np.uint8,
)

ENV_ID = "I2A/Sokoban-v0"
SETTINGS = (
    "dim_room",
    "num_boxes",
    "max_steps",
    "num_gen_steps",
    "num_walk_steps",
    "observation",
    "rgb_scale",
    "fixed_level",
)
OBSERVATION_KINDS = ("channels", "rgb")


# ---------------------------------------------------------------------------------------
# Levels
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class SokobanLevel:
    """One start state plus how it was made.

    Attributes:
        walls: (H, W) bool.
        targets: (H, W) bool.
        boxes: (H, W) bool, the start positions of the boxes.
        player: (row, column) of the player at the start.
        reverse_trace: The reverse moves that produced this start state from the solved
            one, in order, as (action, pulled_a_box). Empty for hand-made levels.
    """

    walls: np.ndarray
    targets: np.ndarray
    boxes: np.ndarray
    player: tuple[int, int]
    reverse_trace: tuple[tuple[int, bool], ...] = ()

    @property
    def dim_room(self) -> tuple[int, int]:
        """(H, W)."""
        return self.walls.shape  # type: ignore[return-value]

    @property
    def num_boxes(self) -> int:
        """Number of boxes (= number of targets)."""
        return int(self.boxes.sum())

    @property
    def forward_solution(self) -> tuple[int, ...]:
        """Actions that solve the level: the reverse trace played backwards.

        The solved state is reached at the latest after the last action; the env ends
        the episode at the first solved state, which may come earlier.
        """
        return tuple(OPPOSITE_ACTION[action] for action, _ in reversed(self.reverse_trace))

    def cell_codes(self) -> np.ndarray:
        """(H, W) int8 array of cell codes (indices into `CHANNELS`)."""
        codes = np.where(self.walls, WALL, np.where(self.targets, TARGET, FLOOR)).astype(np.int8)
        codes += (2 * self.boxes).astype(np.int8)  # floor->box, target->box on target
        codes[self.player] += 4  # floor->player, target->player on target
        return codes

    def to_ascii(self) -> str:
        """The level in standard Sokoban notation (# wall, . target, $ box, @ player)."""
        return grid_to_ascii(np.array(ASCII_OF_CODE)[self.cell_codes()])

    @classmethod
    def from_ascii(cls, ascii_map: str | Sequence[str]) -> SokobanLevel:
        """Parses standard Sokoban notation.

        '#' wall, ' ' (or '-', '_') floor, '.' target, '$' box, '*' box on target,
        '@' player, '+' player on target. The outer ring must be walls.

        Raises:
            ValueError: For a ragged or unknown map, no or several players, boxes and
                targets in different numbers, or an open border.
        """
        rows = ascii_rows(ascii_map, "fixed_level")
        unknown = sorted({char for row in rows for char in row} - set(CODE_OF_ASCII))
        if unknown:
            raise ValueError(
                f"fixed_level has unknown characters {unknown}; use {''.join(CODE_OF_ASCII)!r} "
                "(# wall, space floor, . target, $ box, * box on target, @ player, "
                "+ player on target)."
            )
        codes = np.array([[CODE_OF_ASCII[c] for c in row] for row in rows], dtype=np.int8)
        walls = codes == WALL
        targets = np.isin(codes, (TARGET, BOX_ON_TARGET, PLAYER_ON_TARGET))
        boxes = np.isin(codes, (BOX, BOX_ON_TARGET))
        players = np.argwhere(np.isin(codes, (PLAYER, PLAYER_ON_TARGET)))
        if len(players) != 1:
            raise ValueError(
                f"fixed_level needs exactly one player ('@' or '+'), found {len(players)}."
            )
        if boxes.sum() != targets.sum() or boxes.sum() < 1:
            raise ValueError(
                f"fixed_level needs as many boxes as targets and at least one; found "
                f"{int(boxes.sum())} boxes and {int(targets.sum())} targets."
            )
        check_enclosed(walls, "fixed_level")
        return cls(walls, targets, boxes, (int(players[0][0]), int(players[0][1])))


# gym-sokoban's carving masks: the 1s become floor around the walk's position.
_WALK_MASKS = np.array(
    [
        [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
        [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
        [[0, 0, 0], [1, 1, 0], [0, 1, 0]],
        [[0, 0, 0], [1, 1, 0], [1, 1, 0]],
        [[0, 0, 0], [0, 1, 1], [0, 1, 0]],
    ],
    dtype=bool,
)


def _carve_room(
    height: int, width: int, num_walk_steps: int, rng: np.random.Generator
) -> np.ndarray:
    """(H, W) bool floor mask carved by gym-sokoban's random walk of 3x3 masks."""
    floor = np.zeros((height, width), dtype=bool)
    row, col = int(rng.integers(1, height - 1)), int(rng.integers(1, width - 1))
    # Draw all random numbers at once: scalar Generator calls cost microseconds each.
    change = (rng.random(num_walk_steps) < P_CHANGE_DIRECTION).tolist()
    directions = rng.integers(1, 5, size=num_walk_steps + 1).tolist()
    masks = rng.integers(len(_WALK_MASKS), size=num_walk_steps).tolist()
    direction = directions[-1]
    for step in range(num_walk_steps):
        if change[step]:
            direction = directions[step]
        d_row, d_col = ACTION_MOVES[direction]
        row = min(max(row + d_row, 1), height - 2)
        col = min(max(col + d_col, 1), width - 2)
        floor[row - 1 : row + 2, col - 1 : col + 2] |= _WALK_MASKS[masks[step]]
    floor[[0, -1], :] = False
    floor[:, [0, -1]] = False
    return floor


def _floor_moves(floor: np.ndarray) -> list[list[tuple[int, int, int]]]:
    """Per flat cell, its moves onto floor as (action, next cell, cell behind)."""
    width = floor.shape[1]
    is_floor = floor.ravel().tolist()
    offsets = (0, -width, width, -1, 1)
    return [
        (
            [
                (a, cell + offsets[a], cell - offsets[a])
                for a in (1, 2, 3, 4)
                if is_floor[cell + offsets[a]]
            ]
            if is_floor[cell]
            else []
        )
        for cell in range(len(is_floor))
    ]


def _reverse_play(
    moves_from: list[list[tuple[int, int, int]]],
    width: int,
    targets: list[int],
    player: int,
    num_steps: int,
    rng: np.random.Generator,
) -> tuple[int, dict[int, int], int, list[tuple[int, bool]]]:
    """One random reverse-play rollout on flat cell indices.

    Returns:
        (score, box position -> box id, player position, reverse trace). The score is
        (boxes off target, gym-sokoban's score), compared in that order; gym-sokoban's
        score is the number of box switches x the total Manhattan displacement of the
        boxes from the targets they started on, 0 when nothing useful happened.
    """
    box_at = {target: box_id for box_id, target in enumerate(targets)}
    picks = rng.random(num_steps).tolist()
    pulls = (rng.random(num_steps) < P_PULL).tolist()
    trace: list[tuple[int, bool]] = []
    switches, last_pulled = 0, -1
    for step in range(num_steps):
        free = [move for move in moves_from[player] if move[1] not in box_at]
        if not free:  # boxed in: reverse moves cannot push, so nothing more can happen
            break
        action, next_cell, behind = free[int(picks[step] * len(free))]
        pulled = pulls[step] and behind in box_at
        if pulled:
            box_id = box_at.pop(behind)
            box_at[player] = box_id
            if box_id != last_pulled:
                switches, last_pulled = switches + 1, box_id
        player = next_cell
        trace.append((action, pulled))
    displacement = 0
    for position, box_id in box_at.items():
        origin = targets[box_id]
        displacement += abs(position // width - origin // width) + abs(
            position % width - origin % width
        )
    target_set = set(targets)
    boxes_off_target = sum(position not in target_set for position in box_at)
    return (boxes_off_target, switches * displacement), box_at, player, trace


def _default_walk_steps(dim_room: Sequence[int], num_boxes: int) -> int:
    return max(
        int(WALK_STEPS_PER_SIDE * (dim_room[0] + dim_room[1])), WALK_STEPS_PER_BOX * num_boxes
    )


def generate_level(
    dim_room: tuple[int, int] = DEFAULT_DIM_ROOM,
    num_boxes: int = DEFAULT_NUM_BOXES,
    *,
    rng: np.random.Generator,
    num_gen_steps: int | None = None,
    num_walk_steps: int | None = None,
    max_attempts: int = MAX_GENERATION_ATTEMPTS,
) -> SokobanLevel:
    """Generates one solvable level (random room, boxes on targets, reverse play).

    Args:
        dim_room: (H, W) including the wall border.
        num_boxes: Number of boxes and targets.
        rng: Source of randomness; the same generator state gives the same level.
        num_gen_steps: Reverse-play moves (default int(5 * (H + W))).
        num_walk_steps: Room-carving random-walk steps (default
            max(int(1.7 * (H + W)), 3 * num_boxes)).
        max_attempts: Rooms to try before giving up.

    Raises:
        RuntimeError: If `max_attempts` rooms in a row were too small or reverse play
            left every box on a target (settings too tight for the room size).
    """
    height, width = dim_room
    wanted_off_target = max(1, int(MIN_OFF_TARGET_FRACTION * num_boxes))
    num_gen_steps = num_gen_steps or int(GEN_STEPS_PER_SIDE * (height + width))
    num_walk_steps = num_walk_steps or _default_walk_steps(dim_room, num_boxes)
    chosen_level, chosen_score = None, None
    for attempt in range(max_attempts):
        if chosen_level is not None and (
            chosen_score[0] >= wanted_off_target or attempt >= PREFERRED_ATTEMPTS
        ):
            return chosen_level
        floor = _carve_room(height, width, num_walk_steps, rng)
        floor_cells = np.flatnonzero(floor)
        # The player and every box need a cell, and reverse play needs room to move.
        if len(floor_cells) < num_boxes + 2:
            continue
        chosen = rng.choice(floor_cells, size=num_boxes + 1, replace=False).tolist()
        start_player, targets = chosen[0], chosen[1:]
        moves_from = _floor_moves(floor)
        best = None
        for _ in range(REVERSE_PLAY_ROLLOUTS):
            rollout = _reverse_play(moves_from, width, targets, start_player, num_gen_steps, rng)
            if best is None or rollout[0] > best[0]:
                best = rollout
        score, box_at, player, trace = best
        # gym-sokoban's "score == 0" failure, and the trivial level: reject both.
        if score[1] == 0 or score[0] == 0:
            continue
        if chosen_score is not None and score <= chosen_score:
            continue
        targets_mask = np.zeros(height * width, dtype=bool)
        targets_mask[targets] = True
        boxes_mask = np.zeros(height * width, dtype=bool)
        boxes_mask[list(box_at)] = True
        chosen_score = score
        chosen_level = SokobanLevel(
            walls=~floor,
            targets=targets_mask.reshape(height, width),
            boxes=boxes_mask.reshape(height, width),
            player=divmod(player, width),
            reverse_trace=tuple(trace),
        )
    if chosen_level is not None:
        return chosen_level
    raise RuntimeError(
        f"Could not generate a Sokoban level with dim_room={tuple(dim_room)}, "
        f"num_boxes={num_boxes}, num_gen_steps={num_gen_steps}, "
        f"num_walk_steps={num_walk_steps} in {max_attempts} attempts: "
        "rooms were too small or no box could be pulled off its target. Use fewer boxes, a larger "
        "dim_room, or more num_walk_steps / num_gen_steps."
    )


# ---------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------
def validate_settings(
    dim_room: Sequence[int] = DEFAULT_DIM_ROOM,
    num_boxes: int = DEFAULT_NUM_BOXES,
    max_steps: int = DEFAULT_MAX_STEPS,
    num_gen_steps: int | None = None,
    num_walk_steps: int | None = None,
    observation: str = "channels",
    rgb_scale: int = DEFAULT_RGB_SCALE,
    fixed_level: str | Sequence[str] | SokobanLevel | None = None,
) -> dict[str, Any]:
    """Checks Sokoban settings and fills in defaults.

    Returns:
        The settings as a dict, with `dim_room` a tuple, generation step counts filled
        in and `fixed_level` parsed into a `SokobanLevel` (or None).

    Raises:
        ValueError: Naming the bad setting and how to fix it.
    """
    level = None
    if fixed_level is not None:
        level = (
            fixed_level
            if isinstance(fixed_level, SokobanLevel)
            else SokobanLevel.from_ascii(fixed_level)
        )
        dim_room, num_boxes = level.dim_room, level.num_boxes
    # A string would iterate into characters ("77" -> 7, 7), floats would round silently.
    if (
        isinstance(dim_room, (str, bytes))
        or not isinstance(dim_room, Sequence | np.ndarray)
        or len(dim_room) != 2
        or not all(is_int(side) for side in dim_room)
    ):
        raise ValueError(
            f"dim_room={dim_room!r} must be a pair [height, width] of integers, e.g. [10, 10]."
        )
    height, width = (int(side) for side in dim_room)
    if level is None and min(height, width) < MIN_ROOM_SIDE:
        raise ValueError(
            f"dim_room={(height, width)} is too small: both sides must be >= {MIN_ROOM_SIDE} "
            "(the wall border takes 2); use e.g. (7, 7) or the paper's (10, 10)."
        )
    max_boxes = max(1, (height - 2) * (width - 2) // INTERIOR_CELLS_PER_BOX)
    num_boxes = check_int("num_boxes", num_boxes, 1, "the paper uses 4")
    if level is None and num_boxes > max_boxes:
        raise ValueError(
            f"num_boxes={num_boxes} is more boxes than a dim_room={(height, width)} room can hold: "
            f"at most {max_boxes} (one per {INTERIOR_CELLS_PER_BOX} interior cells). "
            "Use fewer boxes or a larger dim_room."
        )
    max_steps = check_int("max_steps", max_steps, 1, f"the paper uses {DEFAULT_MAX_STEPS}")
    for name, value, default in (
        ("num_gen_steps", num_gen_steps, "int(5 * (H + W))"),
        ("num_walk_steps", num_walk_steps, "int(1.7 * (H + W)), >= 3 per box"),
    ):
        if value is not None:
            check_int(name, value, 1, f"or null for the default {default}")
    check_choice("observation", observation, OBSERVATION_KINDS)
    rgb_scale = check_int(
        "rgb_scale", rgb_scale, 1, f"pixels per cell of 'rgb' pictures, default {DEFAULT_RGB_SCALE}"
    )
    return dict(
        dim_room=(height, width),
        num_boxes=num_boxes,
        max_steps=max_steps,
        num_gen_steps=int(num_gen_steps or int(GEN_STEPS_PER_SIDE * (height + width))),
        num_walk_steps=int(num_walk_steps or _default_walk_steps((height, width), num_boxes)),
        observation=observation,
        rgb_scale=rgb_scale,
        fixed_level=level,
    )


def _draw_tiles(scale: int) -> np.ndarray:
    """(7, 3, scale, scale) uint8 picture of each cell code."""
    tiles = np.empty((len(CHANNELS), 3, scale, scale), dtype=np.uint8)
    tiles[:] = RGB_COLOURS[:, :, None, None]
    inner = slice(scale // 4, scale - scale // 4) if scale >= 4 else slice(0, scale)
    floor, target = RGB_COLOURS[FLOOR][:, None, None], RGB_COLOURS[TARGET][:, None, None]
    # Targets are a small square on floor; a player on a target keeps a target rim.
    tiles[TARGET] = floor
    tiles[TARGET][:, inner, inner] = target
    if scale >= 4:
        tiles[PLAYER] = floor
        tiles[PLAYER][:, inner, inner] = RGB_COLOURS[PLAYER][:, None, None]
        tiles[PLAYER_ON_TARGET] = target
        tiles[PLAYER_ON_TARGET][:, inner, inner] = RGB_COLOURS[PLAYER][:, None, None]
    return tiles


# ---------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------
class SokobanVectorEnv(BoardVectorEnv):
    """N Sokoban boards stepped together with numpy; NEXT_STEP autoreset.

    State per board is kept as flat (N, H*W) arrays so that one step is a handful of
    fancy-indexing operations, whatever N is. Boards that ended (solved or out of
    steps) on step t get a new level on step t+1 (see `BoardVectorEnv`). Board i draws
    its levels from its own generator, seeded with seed + i.

    Infos are `{"solved": bool (N,), "_solved": all True}`.

    Args:
        num_envs: Number of boards N.
        seed: Seeds board i's level generator with seed + i; None draws fresh entropy.
        dim_room: (H, W) of every room, wall border included. Default (10, 10).
        num_boxes: Boxes per level. Default 4.
        max_steps: Steps after which an unsolved episode is truncated. Default 120.
        num_gen_steps: Reverse-play moves per level; default int(5 * (H + W)).
        num_walk_steps: Room-carving walk steps; default max(int(1.7 * (H + W)),
            3 * num_boxes) (gym-sokoban's `num_gen_steps`).
        observation: "channels" (7, H, W) or "rgb" (3, H * rgb_scale, W * rgb_scale).
        rgb_scale: Pixels per cell of the "rgb" observation. Default 8.
        fixed_level: An ASCII map (see `SokobanLevel.from_ascii`) or a `SokobanLevel`
            loaded on every reset instead of generated levels; `dim_room` and
            `num_boxes` then come from it. For tests and debugging.

    Raises:
        ValueError: For bad settings (see `validate_settings`).
    """

    env_name = "Sokoban"
    setting_names = SETTINGS
    settings_validator = staticmethod(validate_settings)
    ascii_setting = "fixed_level"
    ascii_of_code = ASCII_OF_CODE

    def __init__(self, num_envs: int = 1, *, seed: int | None = None, **settings: Any):
        super().__init__(num_envs, seed=seed, **settings)
        self.dim_room = self.settings["dim_room"]
        self.num_boxes = self.settings["num_boxes"]
        self.max_steps = self.settings["max_steps"]
        self._fixed_level: SokobanLevel | None = self.settings["fixed_level"]
        height, width = self.dim_room
        self._num_cells = height * width
        self._tiles = _draw_tiles(self.settings["rgb_scale"])

        n, cells = self.num_envs, self._num_cells
        self._action_offsets = np.array(
            [dr * width + dc for dr, dc in ACTION_MOVES], dtype=np.int64
        )
        # Static part of each board's cell codes: WALL, FLOOR or TARGET.
        self._static_codes = np.zeros((n, cells), dtype=np.int8)
        self._walls = np.ones((n, cells), dtype=bool)
        self._targets = np.zeros((n, cells), dtype=bool)
        self._boxes = np.zeros((n, cells), dtype=bool)
        self._player = np.zeros(n, dtype=np.int64)
        self._boxes_on_target = np.zeros(n, dtype=np.int64)
        self._steps = np.zeros(n, dtype=np.int64)
        self._channel_ids = np.arange(len(CHANNELS), dtype=np.int8)[None, :, None]
        self._levels: list[SokobanLevel | None] = [None] * n

    def _observation_shape(self) -> tuple[int, ...]:
        height, width = self.settings["dim_room"]
        if self.settings["observation"] == "rgb":
            scale = self.settings["rgb_scale"]
            return (3, height * scale, width * scale)
        return (len(CHANNELS), height, width)

    # -- levels ----------------------------------------------------------------------
    def _new_level(self, board: int) -> SokobanLevel:
        if self._fixed_level is not None:
            return self._fixed_level
        return generate_level(
            self.dim_room,
            self.num_boxes,
            rng=self._rngs[board],
            num_gen_steps=self.settings["num_gen_steps"],
            num_walk_steps=self.settings["num_walk_steps"],
        )

    def _start_episode(self, board: int) -> None:
        """Writes a new level's start state into board `board`."""
        level = self._new_level(board)
        walls, targets = level.walls.ravel(), level.targets.ravel()
        self._walls[board] = walls
        self._targets[board] = targets
        self._static_codes[board] = np.where(walls, WALL, np.where(targets, TARGET, FLOOR))
        self._boxes[board] = level.boxes.ravel()
        self._player[board] = level.player[0] * self.dim_room[1] + level.player[1]
        self._boxes_on_target[board] = int((level.boxes & level.targets).sum())
        self._steps[board] = 0
        self._levels[board] = level

    @property
    def levels(self) -> list[SokobanLevel | None]:
        """The level each board is currently playing (start state and reverse trace)."""
        return list(self._levels)

    # -- rules -----------------------------------------------------------------------
    def _advance(
        self, actions: np.ndarray, resetting: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Moves every board's player by its action, pushing boxes; see the module docstring."""
        rows, player = self._rows, self._player
        offsets = self._action_offsets[actions]
        target = player + offsets
        # Only read when the target holds a box, which is never on the border, so the
        # clip only keeps the index legal for the other boards.
        beyond = np.clip(target + offsets, 0, self._num_cells - 1)
        target_is_box = self._boxes[rows, target]
        beyond_free = ~(self._walls[rows, beyond] | self._boxes[rows, beyond])
        push = target_is_box & beyond_free
        moves = ~self._walls[rows, target] & (~target_is_box | beyond_free)
        if push.any():
            pushed_rows, pushed_from, pushed_to = rows[push], target[push], beyond[push]
            self._boxes[pushed_rows, pushed_from] = False
            self._boxes[pushed_rows, pushed_to] = True
        self._player = np.where(moves, target, player)
        # +1 onto a target, -1 off one, 0 from target to target (paper's reward events).
        box_change = push * (
            self._targets[rows, beyond].astype(np.int64)
            - self._targets[rows, target].astype(np.int64)
        )
        self._boxes_on_target += box_change
        self._steps += 1
        solved = self._boxes_on_target == self.num_boxes
        rewards = (
            REWARD_STEP
            + np.where(box_change > 0, REWARD_BOX_ON_TARGET, 0.0)
            + np.where(box_change < 0, REWARD_BOX_OFF_TARGET, 0.0)
            + np.where(solved, REWARD_SOLVED, 0.0)
        ).astype(np.float32)
        terminated = solved
        truncated = (self._steps >= self.max_steps) & ~terminated
        return rewards, terminated, truncated

    def _infos(self, terminated: np.ndarray | None) -> dict[str, Any]:
        # A step's terminations are exactly its solves (a restarting board solved nothing).
        solved = self._boxes_on_target == self.num_boxes if terminated is None else terminated
        return {"solved": solved.copy(), "_solved": np.ones(self.num_envs, dtype=bool)}

    # -- observations and pictures ---------------------------------------------------
    def _flat_cell_codes(self) -> np.ndarray:
        """(N, H*W) int8 codes: static + 2 on boxes + 4 under the player."""
        codes = self._static_codes + 2 * self._boxes.view(np.int8)
        codes[self._rows, self._player] += 4
        return codes

    def _cell_codes(self) -> np.ndarray:
        return self._flat_cell_codes().reshape(self.num_envs, *self.dim_room)

    def _rgb_tiles(self) -> np.ndarray:
        return self._tiles

    def _observe(self) -> np.ndarray:
        if self.settings["observation"] == "rgb":
            return tile_boards(self._cell_codes(), self._tiles)
        height, width = self.dim_room
        one_hot = np.equal(self._flat_cell_codes()[:, None, :], self._channel_ids)
        obs = one_hot.view(np.uint8)
        obs *= 255
        return obs.reshape(self.num_envs, len(CHANNELS), height, width)


class SokobanEnv(SingleBoardEnv):
    """Single-board Sokoban (`gym.make("I2A/Sokoban-v0", ...)`) over a 1-board vector env.

    Same settings, spaces and rules as `SokobanVectorEnv` (see `SingleBoardEnv`).
    """

    vector_env_class = SokobanVectorEnv

    @property
    def level(self) -> SokobanLevel | None:
        """The level being played."""
        return self._vector.levels[0]


def make_vector_env(env_config: Mapping[str, Any] | None = None) -> SokobanVectorEnv:
    """Creator for RLlib: `env_config` holds the settings plus `num_envs` (and `seed`)."""
    return make_board_vector_env(SokobanVectorEnv, env_config)


def _register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(
            ENV_ID,
            entry_point=SokobanEnv,
            vector_entry_point=SokobanVectorEnv,
        )


_register()

__all__ = [
    "ACTION_NAMES",
    "CHANNELS",
    "ENV_ID",
    "SokobanEnv",
    "SokobanLevel",
    "SokobanVectorEnv",
    "generate_level",
    "make_vector_env",
    "validate_settings",
]
