"""What the board environments (Sokoban, MiniPacman) share: numpy + gymnasium only.

* `BoardVectorEnv`: N boards stepped together with numpy, gymnasium's NEXT_STEP
  autoreset, per-board random generators, settings checks, spaces, and ASCII / RGB
  rendering from per-cell codes. A game defines its rules in a few hooks.
* `SingleBoardEnv`: one board of a `BoardVectorEnv` as a `gymnasium.Env`.
* `make_board_vector_env`: the creator RLlib calls with `env_config | {"num_envs": N}`.
* Helpers for hand-drawn ASCII maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from i2a_rllib.envs.settings import check_int, check_known_keys, check_seed

# Both games move one cell per step in the four directions, or stand still.
ACTION_NAMES = ("noop", "up", "down", "left", "right")
NUM_ACTIONS = len(ACTION_NAMES)
# (row, column) change of each action.
ACTION_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
OPPOSITE_ACTION = (0, 2, 1, 4, 3)


# ---------------------------------------------------------------------------------------
# ASCII maps
# ---------------------------------------------------------------------------------------
def ascii_rows(ascii_map: Any, name: str) -> list[str]:
    """The rows of a map given as one string (rows split at newlines) or a list of rows.

    Raises:
        ValueError: For anything else, or rows of different lengths.
    """
    if isinstance(ascii_map, str):
        rows = ascii_map.strip("\n").split("\n")
    elif isinstance(ascii_map, Sequence) and all(isinstance(row, str) for row in ascii_map):
        rows = list(ascii_map)
    else:
        raise ValueError(
            f"{name} must be a map as one string with a row per line or a list of row "
            f"strings, got {ascii_map!r}."
        )
    if not rows or any(len(row) != len(rows[0]) for row in rows):
        raise ValueError(
            f"{name} must be a non-empty rectangle of rows of equal length, got row lengths "
            f"{[len(row) for row in rows]}."
        )
    return rows


def check_enclosed(walls: np.ndarray, name: str) -> None:
    """Refuses a map whose outer ring is not all walls (moves never leave the board)."""
    border = np.ones_like(walls)
    border[1:-1, 1:-1] = False
    if not walls[border].all():
        raise ValueError(f"{name} must be enclosed: every cell of its outer ring must be '#'.")


def grid_to_ascii(chars: np.ndarray) -> str:
    """(H, W) array of single characters -> text, one line per row."""
    return "\n".join("".join(row) for row in chars)


def solid_tiles(colours: np.ndarray, scale: int) -> np.ndarray:
    """(K, 3, scale, scale) uint8 tiles, each one flat colour of `colours` (K, 3)."""
    tiles = np.empty((len(colours), 3, scale, scale), dtype=np.uint8)
    tiles[:] = np.asarray(colours, dtype=np.uint8)[:, :, None, None]
    return tiles


def tile_boards(codes: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """(N, H, W) cell codes -> (N, 3, H * s, W * s) uint8 pictures, tile `codes[n, h, w]`
    (of `tiles`, (K, 3, s, s)) at cell (h, w)."""
    num_boards, height, width = codes.shape
    scale = tiles.shape[-1]
    pictures = tiles[codes]  # (N, H, W, 3, s, s)
    return np.ascontiguousarray(pictures.transpose(0, 3, 1, 4, 2, 5)).reshape(
        num_boards, 3, height * scale, width * scale
    )


# ---------------------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------------------
def board_rngs(seed: int | Sequence[int] | None, num_envs: int) -> list[np.random.Generator]:
    """One generator per board: an int seeds board i with seed + i (gymnasium's
    `SyncVectorEnv` convention), a list gives one seed per board, None fresh entropy."""
    if seed is None:
        return [np.random.default_rng(s) for s in np.random.SeedSequence().spawn(num_envs)]
    if isinstance(seed, (int, np.integer)):
        return [np.random.default_rng(int(seed) + i) for i in range(num_envs)]
    if len(seed) != num_envs:
        raise ValueError(f"reset(seed=list) needs {num_envs} seeds, got {len(seed)}.")
    return [np.random.default_rng(s) for s in seed]


# ---------------------------------------------------------------------------------------
# The vector env
# ---------------------------------------------------------------------------------------
class BoardVectorEnv(VectorEnv):
    """N boards of a grid game stepped together with numpy; NEXT_STEP autoreset.

    Boards that ended (terminated or truncated) on step t start a new episode on step
    t+1: their action is ignored and they return the new start observation with reward
    0, terminated=False, truncated=False, exactly like gymnasium's `SyncVectorEnv`.
    Observations are uint8 (N, *obs_shape); actions `Discrete(5)` (`ACTION_NAMES`).

    A game subclass sets the class attributes below and implements the hooks:
    `_observation_shape`, `_start_episode`, `_advance`, `_observe`, `_infos` and
    `_cell_codes` (what `render_ascii` / `render_rgb` draw with `ascii_of_code` /
    `_rgb_tiles`). Its own state is created in its `__init__` after `super().__init__`.

    Args:
        num_envs: Number of boards N.
        seed: See `_seed`; None draws fresh entropy.
        **settings: The game's settings (`setting_names`), checked by `check_settings`.

    Raises:
        ValueError: For unknown or bad settings.
    """

    env_name: ClassVar[str]  # in messages, e.g. "Sokoban"
    setting_names: ClassVar[tuple[str, ...]]
    # The game's `validate_settings(**settings) -> dict` (defaults filled in).
    settings_validator: ClassVar[Callable[..., dict[str, Any]]]
    # The setting that holds a hand-drawn map (`from_ascii`).
    ascii_setting: ClassVar[str]
    # The character of each cell code, for `render_ascii`.
    ascii_of_code: ClassVar[tuple[str, ...]]

    def __init__(self, num_envs: int = 1, *, seed: int | None = None, **settings: Any):
        self.settings = self.check_settings(settings)
        self.num_envs = check_int("num_envs", num_envs, 1, "it is the number of boards")
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
        self.render_mode = None
        self.single_observation_space = gym.spaces.Box(
            0, 255, self._observation_shape(), dtype=np.uint8
        )
        self.single_action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._rows = np.arange(self.num_envs)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._has_reset = False
        self._seed(seed)

    # -- settings --------------------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The game's settings with defaults filled in.

        Raises:
            ValueError: For an unknown key (with the closest known one) or a bad value.
        """
        check_known_keys(f"{cls.env_name} setting(s)", settings, cls.setting_names)
        return cls.settings_validator(**settings)

    @classmethod
    def check_env_config(cls, env_config: Mapping[str, Any] | None) -> dict[str, Any]:
        """Checks an RLlib `env_config` (the settings plus `num_envs` and `seed`)."""
        config = dict(env_config or {})
        if "num_envs" in config:
            check_int("num_envs", config.pop("num_envs"), 1, "it is the number of boards")
        check_seed(config.pop("seed", None))
        return cls.check_settings(config)

    # -- seeding ---------------------------------------------------------------------
    def _seed(self, seed: int | Sequence[int] | None) -> None:
        """Board i draws from `self._rngs[i]` (see `board_rngs`), so it plays the same
        episodes as a single env seeded with seed + i."""
        self._rngs = board_rngs(seed, self.num_envs)

    # -- gymnasium API ---------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts a new episode on every board (or on `options["reset_mask"]` boards).

        Args:
            seed: Reseeds the boards (see `_seed`).
            options: Optional `{"reset_mask": bool (N,)}` as in `SyncVectorEnv`.

        Returns:
            (observations (N, *obs_shape) uint8, infos).
        """
        if seed is not None:
            self._seed(seed)
        mask = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=bool)
        for board in np.flatnonzero(mask):
            self._start_episode(board)
        self._needs_reset[mask] = False
        self._has_reset = True
        return self._observe(), self._infos(None)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advances every board by its action; boards that ended restart (see above)."""
        if not self._has_reset:
            raise RuntimeError("Call reset() before step().")
        actions = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
        if ((actions < 0) | (actions >= NUM_ACTIONS)).any():
            raise ValueError(
                f"{self.env_name} actions must lie in [0, {NUM_ACTIONS}), got {actions}."
            )
        resetting = self._needs_reset
        any_resetting = bool(resetting.any())
        if any_resetting:
            actions = np.where(resetting, 0, actions)  # a no-op: the board restarts anyway
        rewards, terminated, truncated = self._advance(actions, resetting)
        if any_resetting:
            for board in np.flatnonzero(resetting):
                self._start_episode(board)
            rewards[resetting] = 0.0
            terminated = terminated & ~resetting
            truncated = truncated & ~resetting
        self._needs_reset = terminated | truncated
        return self._observe(), rewards, terminated, truncated, self._infos(terminated)

    def close_extras(self, **kwargs: Any) -> None:
        """Nothing to release: the env holds only numpy arrays."""

    # -- game hooks ------------------------------------------------------------------
    def _observation_shape(self) -> tuple[int, ...]:
        """One board's observation shape, from `self.settings`."""
        raise NotImplementedError

    def _start_episode(self, board: int) -> None:
        """Lays out a fresh episode's start on board `board`."""
        raise NotImplementedError

    def _advance(
        self, actions: np.ndarray, resetting: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Applies the rules to every board -> (rewards float32, terminated, truncated).

        `resetting` boards get a no-op and are restarted right after, whatever happens.
        """
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        """(N, *obs_shape) uint8 observations of the current state."""
        raise NotImplementedError

    def _infos(self, terminated: np.ndarray | None) -> dict[str, Any]:
        """Infos with their `_key` masks; `terminated` is this step's (None on reset)."""
        raise NotImplementedError

    def _cell_codes(self) -> np.ndarray:
        """(N, H, W) int code of what each cell shows (indices into `ascii_of_code`)."""
        raise NotImplementedError

    def _rgb_tiles(self) -> np.ndarray:
        """(K, 3, s, s) uint8 picture of each cell code."""
        raise NotImplementedError

    # -- rendering -------------------------------------------------------------------
    def render_ascii(self, board: int = 0) -> str:
        """Board `board` as text, one character per cell (`ascii_of_code`)."""
        return grid_to_ascii(np.array(self.ascii_of_code)[self._cell_codes()[board]])

    def render_rgb(self) -> np.ndarray:
        """(N, H * s, W * s, 3) uint8 pictures of all boards, one s x s tile per cell."""
        pictures = tile_boards(self._cell_codes(), self._rgb_tiles())
        return np.ascontiguousarray(pictures.transpose(0, 2, 3, 1))

    @classmethod
    def from_ascii(
        cls,
        ascii_map: str | Sequence[str],
        num_envs: int = 1,
        *,
        seed: int | None = None,
        **settings: Any,
    ) -> BoardVectorEnv:
        """A vector env on a hand-drawn map (the game's `ascii_setting`).

        Args:
            ascii_map: The map, see the game's parser.
            num_envs: Number of boards (all on this map).
            seed: As for the constructor.
            **settings: The game's other settings.
        """
        return cls(num_envs, seed=seed, **{cls.ascii_setting: ascii_map}, **settings)


# ---------------------------------------------------------------------------------------
# One board as a gymnasium.Env, and RLlib's creator
# ---------------------------------------------------------------------------------------
class SingleBoardEnv(gym.Env):
    """One board of `vector_env_class` as a `gymnasium.Env`; call `reset()` after an
    episode ends, as for any `gymnasium.Env`.

    Args:
        render_mode: None, "rgb_array" or "ansi".
        seed: Default seed of the first reset.
        **settings: The vector env's settings.
    """

    vector_env_class: ClassVar[type[BoardVectorEnv]]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None, *, seed: int | None = None, **settings: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r}; use None or one of {self.metadata['render_modes']}."
            )
        self.render_mode = render_mode
        self._vector = self.vector_env_class(1, seed=seed, **settings)
        self.observation_space = self._vector.single_observation_space
        self.action_space = self._vector.single_action_space

    def _info(self, infos: dict[str, Any]) -> dict[str, Any]:
        """Board 0's entries of the vector env's info arrays."""
        return {key: value[0].item() for key, value in infos.items() if not key.startswith("_")}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, infos = self._vector.reset(seed=seed)
        return obs[0], self._info(infos)

    def step(self, action: int):
        obs, rewards, terminated, truncated, infos = self._vector.step(np.array([action]))
        return obs[0], float(rewards[0]), bool(terminated[0]), bool(truncated[0]), self._info(infos)

    def render(self):
        if self.render_mode == "rgb_array":
            return self._vector.render_rgb()[0]
        if self.render_mode == "ansi":
            return self._vector.render_ascii(0)
        return None


def make_board_vector_env(
    vector_env_class: type[BoardVectorEnv], env_config: Mapping[str, Any] | None
) -> BoardVectorEnv:
    """What RLlib calls: `env_config` holds the settings plus `num_envs` (and `seed`).

    Raises:
        ValueError: For unknown keys or bad settings, before anything is stepped.
    """
    config = dict(env_config or {})
    num_envs = config.pop("num_envs", 1)
    seed = check_seed(config.pop("seed", None))
    return vector_env_class(num_envs, seed=seed, **config)


__all__ = [
    "ACTION_MOVES",
    "ACTION_NAMES",
    "NUM_ACTIONS",
    "OPPOSITE_ACTION",
    "BoardVectorEnv",
    "SingleBoardEnv",
    "ascii_rows",
    "board_rngs",
    "check_enclosed",
    "grid_to_ascii",
    "make_board_vector_env",
    "solid_tiles",
    "tile_boards",
]
