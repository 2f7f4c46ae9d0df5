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
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from i2a_rllib.envs.single_board import SingleBoardEnv, make_board_vector_env

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

ACTION_NAMES = ("noop", "up", "down", "left", "right")
NUM_ACTIONS = len(ACTION_NAMES)
# (row, column) change of each action.
ACTION_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
OPPOSITE_ACTION = (0, 2, 1, 4, 3)

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
        return "\n".join("".join(ASCII_OF_CODE[c] for c in row) for row in self.cell_codes())

    @classmethod
    def from_ascii(cls, ascii_map: str | Sequence[str]) -> SokobanLevel:
        """Parses standard Sokoban notation.

        '#' wall, ' ' (or '-', '_') floor, '.' target, '$' box, '*' box on target,
        '@' player, '+' player on target. The outer ring must be walls.

        Raises:
            ValueError: For a ragged or unknown map, no or several players, boxes and
                targets in different numbers, or an open border.
        """
        rows = ascii_map.strip("\n").split("\n") if isinstance(ascii_map, str) else list(ascii_map)
        if not rows or any(len(row) != len(rows[0]) for row in rows):
            raise ValueError(
                f"fixed_level/ascii_map must be a non-empty rectangle of rows of equal length, "
                f"got row lengths {[len(row) for row in rows]}."
            )
        unknown = sorted({char for row in rows for char in row} - set(CODE_OF_ASCII))
        if unknown:
            raise ValueError(
                f"ascii_map has unknown characters {unknown}; use {''.join(CODE_OF_ASCII)!r} "
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
                f"ascii_map needs exactly one player ('@' or '+'), found {len(players)}."
            )
        if boxes.sum() != targets.sum() or boxes.sum() < 1:
            raise ValueError(
                f"ascii_map needs as many boxes as targets and at least one; found "
                f"{int(boxes.sum())} boxes and {int(targets.sum())} targets."
            )
        border = np.ones_like(walls)
        border[1:-1, 1:-1] = False
        if not walls[border].all():
            raise ValueError(
                "ascii_map must be enclosed: every cell of its outer ring must be '#'."
            )
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
    try:
        height, width = (int(side) for side in dim_room)
    except (TypeError, ValueError):
        raise ValueError(
            f"dim_room must be a pair (height, width) of ints, e.g. (10, 10); got {dim_room!r}."
        ) from None
    if level is None and min(height, width) < MIN_ROOM_SIDE:
        raise ValueError(
            f"dim_room={(height, width)} is too small: both sides must be >= {MIN_ROOM_SIDE} "
            "(the wall border takes 2); use e.g. (7, 7) or the paper's (10, 10)."
        )
    max_boxes = max(1, (height - 2) * (width - 2) // INTERIOR_CELLS_PER_BOX)
    if not isinstance(num_boxes, (int, np.integer)) or num_boxes < 1:
        raise ValueError(f"num_boxes must be an int >= 1, got {num_boxes!r}; the paper uses 4.")
    if level is None and num_boxes > max_boxes:
        raise ValueError(
            f"num_boxes={num_boxes} is more boxes than a dim_room={(height, width)} room can hold: "
            f"at most {max_boxes} (one per {INTERIOR_CELLS_PER_BOX} interior cells). "
            "Use fewer boxes or a larger dim_room."
        )
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}; the paper uses 120.")
    for name, value in (("num_gen_steps", num_gen_steps), ("num_walk_steps", num_walk_steps)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(
                f"{name} must be an int >= 1 or None (for the default), got {value!r}."
            )
    if observation not in OBSERVATION_KINDS:
        raise ValueError(f"observation={observation!r} is unknown; use one of {OBSERVATION_KINDS}.")
    if not isinstance(rgb_scale, (int, np.integer)) or rgb_scale < 1:
        raise ValueError(
            f"rgb_scale must be an int >= 1 (pixels per cell), got {rgb_scale!r}; default 8."
        )
    return dict(
        dim_room=(height, width),
        num_boxes=int(num_boxes),
        max_steps=int(max_steps),
        num_gen_steps=int(num_gen_steps or int(GEN_STEPS_PER_SIDE * (height + width))),
        num_walk_steps=int(num_walk_steps or _default_walk_steps((height, width), num_boxes)),
        observation=observation,
        rgb_scale=int(rgb_scale),
        fixed_level=level,
    )


def _rgb_tiles(scale: int) -> np.ndarray:
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
class SokobanVectorEnv(VectorEnv):
    """N Sokoban boards stepped together with numpy; NEXT_STEP autoreset.

    State per board is kept as flat (N, H*W) arrays so that one step is a handful of
    fancy-indexing operations, whatever N is. Boards that ended (solved or out of
    steps) on step t get a new level on step t+1: their action is ignored and they
    return the new start observation with reward 0, terminated=False, truncated=False,
    exactly like gymnasium's `SyncVectorEnv`.

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

    def __init__(self, num_envs: int = 1, *, seed: int | None = None, **settings: Any):
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ValueError(
                f"Unknown Sokoban setting(s) {unknown}; the settings are {list(SETTINGS)}."
            )
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}.")
        self.settings = validate_settings(**settings)
        self.num_envs = int(num_envs)
        self.dim_room = self.settings["dim_room"]
        self.num_boxes = self.settings["num_boxes"]
        self.max_steps = self.settings["max_steps"]
        self._fixed_level: SokobanLevel | None = self.settings["fixed_level"]
        height, width = self.dim_room
        self._num_cells = height * width
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
        self.render_mode = None

        scale = self.settings["rgb_scale"]
        if self.settings["observation"] == "rgb":
            self._tiles = _rgb_tiles(scale)
            obs_shape = (3, height * scale, width * scale)
        else:
            self._tiles = None
            obs_shape = (len(CHANNELS), height, width)
        self.single_observation_space = gym.spaces.Box(0, 255, obs_shape, dtype=np.uint8)
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        n, cells = self.num_envs, self._num_cells
        self._rows = np.arange(n)
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
        self._needs_reset = np.zeros(n, dtype=bool)
        self._channel_ids = np.arange(len(CHANNELS), dtype=np.int8)[None, :, None]
        self._levels: list[SokobanLevel | None] = [None] * n
        self._rngs = self._make_rngs(seed)
        self._has_reset = False

    # -- seeding and levels ----------------------------------------------------------
    def _make_rngs(self, seed: int | None) -> list[np.random.Generator]:
        if seed is None:
            return [np.random.default_rng(s) for s in np.random.SeedSequence().spawn(self.num_envs)]
        return [np.random.default_rng(int(seed) + i) for i in range(self.num_envs)]

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

    def _load(self, board: int, level: SokobanLevel) -> None:
        """Writes a level's start state into board `board`."""
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

    # -- gymnasium API ---------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts a new level on every board (or on `options["reset_mask"]` boards).

        Args:
            seed: An int seeds board i with seed + i; a list gives one seed per board.
            options: Optional `{"reset_mask": bool (N,)}` as in `SyncVectorEnv`.

        Returns:
            (observations (N, *obs_shape) uint8, infos).
        """
        if seed is not None:
            if isinstance(seed, (int, np.integer)):
                self._rngs = self._make_rngs(int(seed))
            else:
                if len(seed) != self.num_envs:
                    raise ValueError(
                        f"reset(seed=list) needs {self.num_envs} seeds, got {len(seed)}."
                    )
                self._rngs = [np.random.default_rng(s) for s in seed]
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        for board in np.flatnonzero(mask):
            self._load(board, self._new_level(board))
        self._needs_reset[mask] = False
        self._has_reset = True
        solved = self._boxes_on_target == self.num_boxes
        return self._observe(), {"solved": solved, "_solved": np.ones(self.num_envs, dtype=bool)}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Moves every board's player by its action; see the class docstring."""
        if not self._has_reset:
            raise RuntimeError("Call reset() before step().")
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        if ((actions < 0) | (actions >= NUM_ACTIONS)).any():
            raise ValueError(f"Sokoban actions must lie in [0, {NUM_ACTIONS}), got {actions}.")
        resetting = self._needs_reset
        if resetting.any():
            actions = np.where(resetting, 0, actions)  # a no-op changes nothing

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
        terminated = solved.copy()
        truncated = (self._steps >= self.max_steps) & ~terminated

        if resetting.any():
            for board in np.flatnonzero(resetting):
                self._load(board, self._new_level(board))
            rewards[resetting] = 0.0
            terminated[resetting] = False
            truncated[resetting] = False
            solved = solved & ~resetting
        self._needs_reset = terminated | truncated
        infos = {"solved": solved, "_solved": np.ones(self.num_envs, dtype=bool)}
        return self._observe(), rewards, terminated, truncated, infos

    def _cell_codes(self) -> np.ndarray:
        """(N, H*W) int8 codes: static + 2 on boxes + 4 under the player."""
        codes = self._static_codes + 2 * self._boxes.view(np.int8)
        codes[self._rows, self._player] += 4
        return codes

    def _observe(self) -> np.ndarray:
        codes = self._cell_codes()
        height, width = self.dim_room
        if self._tiles is not None:
            scale = self.settings["rgb_scale"]
            # (N, H, W, 3, s, s) -> (N, 3, H, s, W, s) -> (N, 3, H*s, W*s)
            tiles = self._tiles[codes.reshape(-1, height, width)]
            return np.ascontiguousarray(tiles.transpose(0, 3, 1, 4, 2, 5)).reshape(
                self.num_envs, 3, height * scale, width * scale
            )
        one_hot = np.equal(codes[:, None, :], self._channel_ids)
        obs = one_hot.view(np.uint8)
        obs *= 255
        return obs.reshape(self.num_envs, len(CHANNELS), height, width)

    def render_ascii(self, board: int = 0) -> str:
        """Board `board` in standard Sokoban notation."""
        codes = self._cell_codes()[board].reshape(self.dim_room)
        return "\n".join("".join(ASCII_OF_CODE[c] for c in row) for row in codes)

    def render_rgb(self) -> np.ndarray:
        """(N, H * s, W * s, 3) uint8 pictures of all boards (s = rgb_scale)."""
        tiles = self._tiles if self._tiles is not None else _rgb_tiles(self.settings["rgb_scale"])
        height, width = self.dim_room
        scale = tiles.shape[-1]
        pictures = tiles[self._cell_codes().reshape(-1, height, width)]  # (N, H, W, 3, s, s)
        return np.ascontiguousarray(pictures.transpose(0, 1, 4, 2, 5, 3)).reshape(
            self.num_envs, height * scale, width * scale, 3
        )

    @classmethod
    def from_ascii(
        cls,
        ascii_map: str | Sequence[str],
        num_envs: int = 1,
        *,
        seed: int | None = None,
        **settings: Any,
    ) -> SokobanVectorEnv:
        """A vector env whose every reset loads the given hand-made level.

        Args:
            ascii_map: Standard Sokoban notation, see `SokobanLevel.from_ascii`.
            num_envs: Number of boards (all start from this level).
            seed: Unused by fixed levels; accepted for symmetry.
            **settings: Other settings (max_steps, observation, rgb_scale).
        """
        return cls(num_envs, seed=seed, fixed_level=ascii_map, **settings)

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release: the env holds only numpy arrays."""


class SokobanEnv(SingleBoardEnv):
    """Single-board Sokoban (`gym.make("I2A/Sokoban-v0", ...)`) over a 1-board vector env.

    Same settings, spaces and rules as `SokobanVectorEnv` (see `SingleBoardEnv`).
    """

    vector_env_class = SokobanVectorEnv
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

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
