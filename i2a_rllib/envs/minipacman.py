"""Batched MiniPacman, the multi-task game of the I2A paper (Weber et al. 2017, appendix).

Pure numpy + gymnasium: `MiniPacmanVectorEnv` steps N boards at once with array
operations and resets finished boards itself (gymnasium's NEXT_STEP autoreset),
`MiniPacmanEnv` is the single-board `gymnasium.Env` for `gym.make("I2A/MiniPacman-v0")`,
and `make_vector_env` is the creator RLlib calls with `env_config | {"num_envs": N}`.

The rules follow DeepMind's reference implementation of the paper's game ("PillEater",
by S. Racaniere), on the paper's 15x19 maze:

* A level has 2 power pills, the player and `1 + (level - 1) // 2` ghosts (at most
  `max_ghosts`), placed at random (ghosts at least `safe_distance` rows or columns
  away from the player), and food on every other free cell.
* The player moves one cell per step (actions: 0 no-op, 1 up, 2 down, 3 left,
  4 right; into a wall = stay). It eats the food or power pill on the cell it reaches.
  (The paper's text says a powered player moves two cells; the reference code, and
  this env, keep it at one.)
* A power pill makes the ghosts edible: on the step it is eaten and the next
  `power_duration - 1` steps (20 steps in all by default).
* Each ghost moves one cell with probability `ghost_speed` (0.5 on level 1, +0.1 per
  level, capped at 1, halved while edible): it keeps going along corridors, turns at
  corners, never reverses unless at a dead end, and at junctions takes the branch that
  points most towards the player (most away from it while edible), except that a
  chasing ghost takes a random branch with probability
  `ghost_random_turn_probability` (0.05).
* The player meets a ghost when they share a cell after the player's move or after the
  ghost's move (so crossing paths always meets). An edible ghost is eaten and gone for
  the rest of the level; otherwise the player is killed and the episode *terminates*.
* A level is cleared, and the next one (more ghosts, faster) starts on the same step,
  when the task's goal is done: all food eaten (regular, avoid), all ghosts eaten
  (hunt, ambush), both power pills eaten (rush), or 128 steps passed (avoid). With
  `terminate_on_level_clear=True` the episode terminates there instead.
* Episodes are truncated after `max_steps` (1000) steps.

Rewards per event, by task (the paper's table):

    task     step   food   power pill   ghost eaten   killed
    regular   0      1        2             5            0
    avoid     0.1   -0.1     -5           -10          -20
    hunt      0      0        1            10          -20
    ambush    0     -0.1      0            10          -20
    rush      0     -0.1     10             0            0

Observation: uint8 (6, 15, 19), one channel per entity in `CHANNELS`, 255 where present
and 0 elsewhere. Unlike the reference's RGB frames, edibility is binary: the
remaining power time is not visible (it is in `infos["power_steps_left"]`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from i2a_rllib.envs.board import (
    ACTION_MOVES,
    ACTION_NAMES,
    NUM_ACTIONS,
    OPPOSITE_ACTION,
    BoardVectorEnv,
    SingleBoardEnv,
    ascii_rows,
    check_enclosed,
    make_board_vector_env,
    solid_tiles,
)
from i2a_rllib.envs.settings import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_probability,
)

# ---------------------------------------------------------------------------------------
# Hyper-parameters (DeepMind reference values unless noted).
# ---------------------------------------------------------------------------------------
DEFAULT_TASK = "regular"
DEFAULT_MAX_STEPS = 1000  # the reference caps episodes at 3000 frames
NUM_POWER_PILLS = 2
POWER_DURATION = 20
GHOST_SPEED = 0.5  # probability that a ghost moves on a step, on level 1
GHOST_SPEED_INCREASE = 0.1  # per level
EDIBLE_GHOST_SPEED_FACTOR = 0.5
GHOST_RANDOM_TURN_PROBABILITY = 0.05
INITIAL_GHOSTS = 1
GHOSTS_ADDED_EVERY_LEVELS = 2
MAX_GHOSTS = 8  # cap; not in the reference, where levels could in principle grow forever
SAFE_DISTANCE = 5
AVOID_LEVEL_STEPS = 128  # "avoid": a new level every 128 steps


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Reward per event and what clears a level, for one task."""

    step: float
    food: float
    power_pill: float
    ghost: float
    killed: float
    clear_on: str  # "food", "ghosts" or "pills"
    level_steps: int | None = None  # a new level after this many steps, if set


TASKS: dict[str, TaskSpec] = {
    "regular": TaskSpec(step=0.0, food=1.0, power_pill=2.0, ghost=5.0, killed=0.0, clear_on="food"),
    "avoid": TaskSpec(
        step=0.1,
        food=-0.1,
        power_pill=-5.0,
        ghost=-10.0,
        killed=-20.0,
        clear_on="food",
        level_steps=AVOID_LEVEL_STEPS,
    ),
    "hunt": TaskSpec(
        step=0.0, food=0.0, power_pill=1.0, ghost=10.0, killed=-20.0, clear_on="ghosts"
    ),
    "ambush": TaskSpec(
        step=0.0, food=-0.1, power_pill=0.0, ghost=10.0, killed=-20.0, clear_on="ghosts"
    ),
    "rush": TaskSpec(step=0.0, food=-0.1, power_pill=10.0, ghost=0.0, killed=0.0, clear_on="pills"),
}

# The paper's maze ('#' wall, '.' free cell with food).
STANDARD_MAZE = (
    "###################",
    "#...#.........#...#",
    "#.#.#.#######.#.#.#",
    "#.................#",
    "#.#.#.#######.#.#.#",
    "#.#.............#.#",
    "#.####.#####.####.#",
    "#......#####......#",
    "#.####.#####.####.#",
    "#.#.............#.#",
    "#.#.#.#######.#.#.#",
    "#.................#",
    "#.#.#.#######.#.#.#",
    "#...#.........#...#",
    "###################",
)

REVERSE_ACTION = np.array(OPPOSITE_ACTION)

CHANNELS = ("wall", "food", "power_pill", "player", "ghost", "edible_ghost")
WALL, FOOD, POWER_PILL, PLAYER, GHOST, EDIBLE_GHOST = range(len(CHANNELS))
# Layout notation: '#' wall, '.' food, ' ' empty floor, 'o' power pill, 'P' player,
# 'G' ghost heading in a random direction, '^' 'v' '<' '>' ghost heading up, down,
# left, right (ghosts stand on empty floor).
GHOST_HEADINGS = {"G": None, "^": 1, "v": 2, "<": 3, ">": 4}
LAYOUT_CHARS = "#. oP" + "".join(GHOST_HEADINGS)

RGB_SCALE = 8
# What `render_ascii` / `render_rgb` draw, per cell code; where several things share a
# cell the one listed last wins (the player over a ghost over a pill ...).
RENDER_CODES = ("empty", "wall", "food", "power_pill", "edible_ghost", "ghost", "player")
ASCII_OF_CODE = (" ", "#", ".", "o", "E", "G", "P")
RGB_COLOURS = {
    "empty": (0, 0, 0),
    "wall": (200, 200, 200),
    "food": (60, 60, 220),
    "power_pill": (40, 220, 220),
    "edible_ghost": (220, 220, 40),
    "ghost": (220, 40, 40),
    "player": (60, 200, 60),
}
# The observation channel behind each render code but "empty".
_CHANNEL_OF_RENDER_CODE = (WALL, FOOD, POWER_PILL, EDIBLE_GHOST, GHOST, PLAYER)

ENV_ID = "I2A/MiniPacman-v0"
SETTINGS = (
    "task",
    "max_steps",
    "layout",
    "num_power_pills",
    "power_duration",
    "ghost_speed",
    "ghost_speed_increase",
    "edible_ghost_speed_factor",
    "ghost_random_turn_probability",
    "initial_ghosts",
    "max_ghosts",
    "safe_distance",
    "terminate_on_level_clear",
)


# ---------------------------------------------------------------------------------------
# Layouts and settings
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """A maze plus, optionally, a hand-placed first level.

    Attributes:
        walls: (H, W) bool.
        start: None for random levels, else the first level of every episode:
            {"food": (H, W) bool, "pills": (H, W) bool, "player": flat index,
            "ghosts": list of flat indices, "headings": per ghost an action id
            (1 up, 2 down, 3 left, 4 right) or None for a random heading}.
    """

    walls: np.ndarray
    start: dict[str, Any] | None = None

    @classmethod
    def from_ascii(cls, ascii_map: str | Sequence[str]) -> Layout:
        """Parses '#' wall, '.' food, ' ' empty, 'o' power pill, 'P' player, ghosts.

        Ghosts are 'G' (random heading) or '^', 'v', '<', '>' (heading up, down, left,
        right); the heading matters because ghosts never turn back.

        A map without 'P' only defines the maze (every level is random on it). A map
        with 'P' also fixes the first level of every episode. The outer ring must be
        walls.

        Raises:
            ValueError: For a ragged map, unknown characters, an open border, several
                players, or ghosts/pills without a player.
        """
        rows = ascii_rows(ascii_map, "layout")
        chars = np.array([list(row) for row in rows])
        unknown = sorted(set(chars.ravel()) - set(LAYOUT_CHARS))
        if unknown:
            raise ValueError(
                f"layout has unknown characters {unknown}; use '#' wall, '.' food, ' ' empty, "
                "'o' power pill, 'P' player, 'G' ghost (or '^', 'v', '<', '>' for a ghost "
                "with a heading)."
            )
        walls = chars == "#"
        check_enclosed(walls, "layout")
        if (~walls).sum() < 2:
            raise ValueError("layout needs at least 2 free cells.")
        players = np.flatnonzero(chars == "P")
        if len(players) > 1:
            raise ValueError(f"layout may hold at most one player 'P', found {len(players)}.")
        if len(players) == 0:
            if np.isin(chars, ["o", *GHOST_HEADINGS]).any():
                raise ValueError(
                    "layout places pills or ghosts but no player 'P'; add one or remove them."
                )
            return cls(walls)
        start = {
            "food": chars == ".",
            "pills": chars == "o",
            "player": int(players[0]),
            "ghosts": np.flatnonzero(np.isin(chars, list(GHOST_HEADINGS))).tolist(),
        }
        start["headings"] = [GHOST_HEADINGS[chars.flat[cell]] for cell in start["ghosts"]]
        return cls(walls, start)


def validate_settings(
    task: str = DEFAULT_TASK,
    max_steps: int = DEFAULT_MAX_STEPS,
    layout: str | Sequence[str] | Layout | None = None,
    num_power_pills: int = NUM_POWER_PILLS,
    power_duration: int = POWER_DURATION,
    ghost_speed: float = GHOST_SPEED,
    ghost_speed_increase: float = GHOST_SPEED_INCREASE,
    edible_ghost_speed_factor: float = EDIBLE_GHOST_SPEED_FACTOR,
    ghost_random_turn_probability: float = GHOST_RANDOM_TURN_PROBABILITY,
    initial_ghosts: int = INITIAL_GHOSTS,
    max_ghosts: int = MAX_GHOSTS,
    safe_distance: int = SAFE_DISTANCE,
    terminate_on_level_clear: bool = False,
) -> dict[str, Any]:
    """Checks MiniPacman settings and fills in defaults.

    Returns:
        The settings as a dict, `layout` parsed into a `Layout`.

    Raises:
        ValueError: Naming the bad setting and how to fix it.
    """
    check_choice("task", task, TASKS)
    if not isinstance(layout, Layout):
        layout = Layout.from_ascii(STANDARD_MAZE if layout is None else layout)
    settings = dict(
        task=task,
        max_steps=check_int("max_steps", max_steps, 1, f"default {DEFAULT_MAX_STEPS}"),
        layout=layout,
        num_power_pills=check_int(
            "num_power_pills", num_power_pills, 0, f"default {NUM_POWER_PILLS}"
        ),
        power_duration=check_int("power_duration", power_duration, 1, f"default {POWER_DURATION}"),
        ghost_speed=check_probability("ghost_speed", ghost_speed, f"default {GHOST_SPEED}"),
        ghost_speed_increase=check_number(
            "ghost_speed_increase",
            ghost_speed_increase,
            f"default {GHOST_SPEED_INCREASE} (the speed is capped at 1)",
            minimum=0.0,
        ),
        edible_ghost_speed_factor=check_probability(
            "edible_ghost_speed_factor",
            edible_ghost_speed_factor,
            f"default {EDIBLE_GHOST_SPEED_FACTOR}",
        ),
        ghost_random_turn_probability=check_probability(
            "ghost_random_turn_probability",
            ghost_random_turn_probability,
            f"default {GHOST_RANDOM_TURN_PROBABILITY}",
        ),
        initial_ghosts=check_int("initial_ghosts", initial_ghosts, 0, f"default {INITIAL_GHOSTS}"),
        max_ghosts=check_int("max_ghosts", max_ghosts, 1, f"default {MAX_GHOSTS}"),
        safe_distance=check_int("safe_distance", safe_distance, 0, f"default {SAFE_DISTANCE}"),
        terminate_on_level_clear=check_bool(
            "terminate_on_level_clear", terminate_on_level_clear, "default false"
        ),
    )
    if task == "rush" and settings["num_power_pills"] < 1:
        raise ValueError(
            "task='rush' is about eating power pills: num_power_pills must be >= 1 (default 2)."
        )
    if settings["initial_ghosts"] > settings["max_ghosts"]:
        raise ValueError(
            f"initial_ghosts={initial_ghosts} exceeds max_ghosts={max_ghosts}; raise "
            "max_ghosts or lower initial_ghosts."
        )
    free_cells = int((~layout.walls).sum())
    if settings["num_power_pills"] + 1 > free_cells:
        raise ValueError(
            f"num_power_pills={num_power_pills} does not fit the layout's {free_cells} free cells "
            "(one is the player's); use fewer pills."
        )
    if layout.start is not None and len(layout.start["ghosts"]) > settings["max_ghosts"]:
        raise ValueError(
            f"layout places {len(layout.start['ghosts'])} ghosts but max_ghosts={max_ghosts}; "
            "raise max_ghosts."
        )
    return settings


# ---------------------------------------------------------------------------------------
# Environments
# ---------------------------------------------------------------------------------------
class MiniPacmanVectorEnv(BoardVectorEnv):
    """N MiniPacman boards stepped together with numpy; NEXT_STEP autoreset.

    Boards that ended (killed, or out of steps) on step t start a new episode on step
    t+1 (see `BoardVectorEnv`). All randomness (levels and ghosts) comes from one
    `numpy.random.Generator` per vector env (not one per board, unlike Sokoban), so the
    same seed and actions give the same trajectories.

    Infos: `{"level": int (N,), "power_steps_left": int (N,)}` with all-True `_` masks.

    Args:
        num_envs: Number of boards N.
        seed: Seed of the env's generator; None draws fresh entropy.
        task: One of `TASKS` ("regular", "avoid", "hunt", "ambush", "rush").
        max_steps: Steps after which an episode is truncated. Default 1000.
        layout: ASCII maze (see `Layout.from_ascii`); default the paper's 15x19 maze. A
            layout with a player 'P' also fixes the first level of every episode.
        num_power_pills: Power pills per level. Default 2.
        power_duration: Steps the ghosts stay edible, the eating step included. 20.
        ghost_speed: Probability that a ghost moves on a step, on level 1. 0.5.
        ghost_speed_increase: Added per level (the probability is capped at 1). 0.1.
        edible_ghost_speed_factor: Multiplies the ghost speed while edible. 0.5.
        ghost_random_turn_probability: Chance that a chasing ghost turns at random at a
            junction. 0.05.
        initial_ghosts: Ghosts on level 1; one more every 2 levels. 1.
        max_ghosts: Cap on ghosts per level. 8.
        safe_distance: New ghosts start at least this many rows or columns away from
            the player. 5.
        terminate_on_level_clear: End the episode when a level is cleared instead of
            starting the next one. False.

    Raises:
        ValueError: For bad settings (see `validate_settings`).
    """

    env_name = "MiniPacman"
    setting_names = SETTINGS
    settings_validator = staticmethod(validate_settings)
    ascii_setting = "layout"
    ascii_of_code = ASCII_OF_CODE

    def __init__(self, num_envs: int = 1, *, seed: int | None = None, **settings: Any):
        super().__init__(num_envs, seed=seed, **settings)
        self.task = self.settings["task"]
        self.task_spec = TASKS[self.task]
        self.max_steps = self.settings["max_steps"]
        self.layout: Layout = self.settings["layout"]
        height, width = self.layout.walls.shape
        self.dim = (height, width)
        cells = height * width
        colours = np.array([RGB_COLOURS[kind] for kind in RENDER_CODES])
        self._tiles = solid_tiles(colours, RGB_SCALE)

        # Static maze tables: where each action leads from each cell (walls block).
        walls = self.layout.walls.ravel()
        self._walls = walls
        self._free_cells = np.flatnonzero(~walls)
        self._cell_rows, self._cell_cols = np.divmod(np.arange(cells), width)
        self._next_cell = np.empty((cells, NUM_ACTIONS), dtype=np.int64)
        for action, (d_row, d_col) in enumerate(ACTION_MOVES):
            rows = np.clip(self._cell_rows + d_row, 0, height - 1)
            cols = np.clip(self._cell_cols + d_col, 0, width - 1)
            target = rows * width + cols
            self._next_cell[:, action] = np.where(walls[target], np.arange(cells), target)
        # open_moves[cell, a] for a in 1..4 (index 0, the no-op, is never "open").
        self._open_moves = self._next_cell != np.arange(cells)[:, None]
        self._open_moves[:, 0] = False
        self._move_vectors = np.array(ACTION_MOVES, dtype=np.int64)  # (5, 2)

        n, ghosts = self.num_envs, self.settings["max_ghosts"]
        self._food = np.zeros((n, cells), dtype=bool)
        self._pills = np.zeros((n, cells), dtype=bool)
        self._player = np.zeros(n, dtype=np.int64)
        self._ghost_cell = np.zeros((n, ghosts), dtype=np.int64)
        self._ghost_dir = np.ones((n, ghosts), dtype=np.int64)
        self._ghost_alive = np.zeros((n, ghosts), dtype=bool)
        self._food_left = np.zeros(n, dtype=np.int64)
        self._pills_left = np.zeros(n, dtype=np.int64)
        self._power = np.zeros(n, dtype=np.int64)
        self._level = np.ones(n, dtype=np.int64)
        self._level_steps = np.zeros(n, dtype=np.int64)
        self._episode_steps = np.zeros(n, dtype=np.int64)
        self._wall_channel = walls.astype(np.uint8)

    def _observation_shape(self) -> tuple[int, ...]:
        return (len(CHANNELS), *self.settings["layout"].walls.shape)

    def _seed(self, seed: int | Sequence[int] | None) -> None:
        """One generator for all boards (an int or a list of ints seeds it): the ghosts of
        every board draw their moves in one call per step."""
        self._rng = np.random.default_rng(seed)

    # -- levels ------------------------------------------------------------------------
    def _start_level(self, board: int, level: int) -> None:
        """Lays out level `level` on board `board` (the layout's own start on level 1)."""
        settings, rng = self.settings, self._rng
        start = self.layout.start if level == 1 else None
        ghost_cells: list[int]
        headings = rng.integers(1, NUM_ACTIONS, size=settings["max_ghosts"])
        if start is not None:
            player, food, pills = start["player"], start["food"].ravel(), start["pills"].ravel()
            ghost_cells = list(start["ghosts"])
            for slot, heading in enumerate(start["headings"]):
                if heading is not None:
                    headings[slot] = heading
        else:
            free = self._free_cells
            player = int(rng.choice(free))
            others = free[free != player]
            pill_cells = rng.choice(others, size=settings["num_power_pills"], replace=False)
            pills = np.zeros_like(self._walls)
            pills[pill_cells] = True
            food = ~self._walls & ~pills
            food[player] = False
            num_ghosts = min(
                settings["max_ghosts"],
                settings["initial_ghosts"] + (level - 1) // GHOSTS_ADDED_EVERY_LEVELS,
            )
            far = (
                np.abs(self._cell_rows[free] - self._cell_rows[player]) >= settings["safe_distance"]
            ) | (
                np.abs(self._cell_cols[free] - self._cell_cols[player]) >= settings["safe_distance"]
            )
            candidates = free[far] if far.any() else others
            ghost_cells = rng.choice(
                candidates, size=num_ghosts, replace=len(candidates) < num_ghosts
            ).tolist()
        self._player[board] = player
        self._food[board] = food
        self._pills[board] = pills
        self._food_left[board] = int(food.sum())
        self._pills_left[board] = int(pills.sum())
        self._ghost_alive[board] = False
        self._ghost_alive[board, : len(ghost_cells)] = True
        self._ghost_cell[board, : len(ghost_cells)] = ghost_cells
        self._ghost_dir[board] = headings
        self._power[board] = 0
        self._level[board] = level
        self._level_steps[board] = 0

    def _start_episode(self, board: int) -> None:
        self._start_level(board, 1)
        self._episode_steps[board] = 0

    # -- rules -------------------------------------------------------------------------
    def _advance(
        self, actions: np.ndarray, resetting: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Moves every board's player, then its ghosts; see the module docstring."""
        spec, rows = self.task_spec, self._rows
        self._episode_steps += 1
        self._level_steps += 1
        np.maximum(self._power - 1, 0, out=self._power)
        rewards = np.full(self.num_envs, spec.step, dtype=np.float64)

        # The player moves and eats what it finds.
        player = self._next_cell[self._player, actions]
        self._player = player
        ate_food = self._food[rows, player]
        self._food[rows, player] = False
        self._food_left -= ate_food
        ate_pill = self._pills[rows, player]
        self._pills[rows, player] = False
        self._pills_left -= ate_pill
        self._power[ate_pill] = self.settings["power_duration"]
        rewards += spec.food * ate_food + spec.power_pill * ate_pill
        powered = self._power > 0

        # Meetings after the player's move, then the ghosts move, then meetings again.
        killed = self._meet_ghosts(powered, rewards)
        self._move_ghosts(powered, killed)
        killed |= self._meet_ghosts(powered, rewards)
        rewards += spec.killed * killed

        terminated = killed
        if spec.clear_on == "food":
            cleared = self._food_left == 0
        elif spec.clear_on == "ghosts":
            cleared = ~self._ghost_alive.any(axis=1)
        else:
            cleared = self._pills_left == 0
        if spec.level_steps is not None:
            cleared |= self._level_steps >= spec.level_steps
        cleared &= ~killed & ~resetting
        if self.settings["terminate_on_level_clear"]:
            terminated = terminated | cleared
        elif cleared.any():
            for board in np.flatnonzero(cleared):
                self._start_level(board, int(self._level[board]) + 1)
        truncated = (self._episode_steps >= self.max_steps) & ~terminated
        return rewards.astype(np.float32), terminated, truncated

    def _meet_ghosts(self, powered: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """Resolves ghosts on the player's cell: edible ones are eaten (reward added).

        Returns:
            bool (N,): boards whose player met a non-edible ghost.
        """
        meets = self._ghost_alive & (self._ghost_cell == self._player[:, None])
        eaten = meets & powered[:, None]
        if eaten.any():
            self._ghost_alive &= ~eaten
            rewards += self.task_spec.ghost * eaten.sum(axis=1)
        return (meets & ~powered[:, None]).any(axis=1)

    def _move_ghosts(self, powered: np.ndarray, killed: np.ndarray) -> None:
        """Moves each living ghost one cell with its level's probability."""
        settings = self.settings
        speed = np.minimum(
            1.0, settings["ghost_speed"] + settings["ghost_speed_increase"] * (self._level - 1)
        )
        speed = np.where(powered, speed * settings["edible_ghost_speed_factor"], speed)
        draws = self._rng.random((self.num_envs, settings["max_ghosts"], 6))
        moving = self._ghost_alive & (draws[..., 0] < speed[:, None]) & ~killed[:, None]
        if not moving.any():
            return
        cell, direction = self._ghost_cell, self._ghost_dir
        open_moves = self._open_moves[cell]  # (N, G, 5)
        num_open = open_moves.sum(axis=-1)
        # Never reverse, unless it is the only way out (dead end).
        reverse = REVERSE_ACTION[direction]
        allowed = open_moves.copy()
        np.put_along_axis(allowed, reverse[..., None], False, axis=-1)
        dead_end = ~allowed.any(axis=-1)
        allowed[dead_end] = open_moves[dead_end]
        # Corridors and corners: keep going if possible, else take the one way left.
        keeps_going = np.take_along_axis(allowed, direction[..., None], axis=-1)[..., 0]
        corridor_choice = np.where(keeps_going, direction, np.argmax(allowed, axis=-1))
        # Junctions: towards the player (away while edible), sometimes at random.
        to_player = np.stack(
            [
                self._cell_rows[self._player][:, None] - self._cell_rows[cell],
                self._cell_cols[self._player][:, None] - self._cell_cols[cell],
            ],
            axis=-1,
        )  # (N, G, 2)
        alignment = (to_player @ self._move_vectors.T).astype(np.float64)  # (N, G, 5)
        alignment = np.where(powered[:, None, None], -alignment, alignment)
        random_turn = (draws[..., 1] < settings["ghost_random_turn_probability"]) & ~powered[
            :, None
        ]
        preference = np.where(random_turn[..., None], draws[..., 1:], alignment)
        preference = np.where(allowed, preference, -np.inf)
        junction_choice = np.argmax(preference, axis=-1)
        new_direction = np.where(num_open <= 2, corridor_choice, junction_choice)
        self._ghost_dir = np.where(moving, new_direction, direction)
        self._ghost_cell = np.where(moving, self._next_cell[cell, new_direction], cell)

    def _infos(self, terminated: np.ndarray | None) -> dict[str, Any]:
        everyone = np.ones(self.num_envs, dtype=bool)
        return {
            "level": self._level.copy(),
            "_level": everyone,
            "power_steps_left": self._power.copy(),
            "_power_steps_left": everyone.copy(),
        }

    def _observe(self) -> np.ndarray:
        n, cells = self.num_envs, self._walls.size
        obs = np.zeros((n, len(CHANNELS), cells), dtype=np.uint8)
        obs[:, WALL] = self._wall_channel
        obs[:, FOOD] = self._food
        obs[:, POWER_PILL] = self._pills
        obs[self._rows, PLAYER, self._player] = 1
        boards, slots = np.nonzero(self._ghost_alive)
        channel = np.where(self._power[boards] > 0, EDIBLE_GHOST, GHOST)
        obs[boards, channel, self._ghost_cell[boards, slots]] = 1
        obs *= 255
        return obs.reshape(n, len(CHANNELS), *self.dim)

    # -- pictures ----------------------------------------------------------------------
    def _cell_codes(self) -> np.ndarray:
        """(N, H, W) index into `RENDER_CODES` of what each cell shows."""
        shown = self._observe() > 0  # (N, 6, H, W)
        codes = np.zeros((self.num_envs, *self.dim), dtype=np.int8)
        for code, channel in enumerate(_CHANNEL_OF_RENDER_CODE, start=1):
            codes[shown[:, channel]] = code
        return codes

    def _rgb_tiles(self) -> np.ndarray:
        return self._tiles


class MiniPacmanEnv(SingleBoardEnv):
    """Single-board MiniPacman (`gym.make("I2A/MiniPacman-v0", task=...)`).

    Same settings, spaces and rules as `MiniPacmanVectorEnv` (see `SingleBoardEnv`).
    """

    vector_env_class = MiniPacmanVectorEnv
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 8}


def make_vector_env(env_config: Mapping[str, Any] | None = None) -> MiniPacmanVectorEnv:
    """Creator for RLlib: `env_config` holds the settings plus `num_envs` (and `seed`)."""
    return make_board_vector_env(MiniPacmanVectorEnv, env_config)


def _register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=MiniPacmanEnv, vector_entry_point=MiniPacmanVectorEnv)


_register()

__all__ = [
    "ACTION_NAMES",
    "CHANNELS",
    "ENV_ID",
    "STANDARD_MAZE",
    "TASKS",
    "Layout",
    "MiniPacmanEnv",
    "MiniPacmanVectorEnv",
    "TaskSpec",
    "make_vector_env",
    "validate_settings",
]
