"""Which episodes an evaluation counts, and the state its imagination picture starts from
(no Ray needed)."""

import numpy as np

from i2a_rllib.evaluation import EpisodeQuota, _motion


def test_episode_quota_does_not_favour_short_episodes():
    """Env 0 ends an episode every 2 steps (score 0), env 1 every 10 steps (score 1).
    Counting the first 4 episodes to finish would take four of env 0's; the quota takes
    two of each env's own first episodes."""
    quota = EpisodeQuota(episodes=4, num_envs=2)
    for step in range(1, 41):
        if step % 2 == 0:
            quota.add(0, score=0.0, length=2)
        if step % 10 == 0:
            quota.add(1, score=1.0, length=10)
        if quota.full:
            break
    assert step == 20  # env 1's second episode
    assert quota.episodes == [(0.0, 2), (0.0, 2), (1.0, 10), (1.0, 10)]


def test_episode_quota_spreads_a_remainder_over_the_first_envs():
    quota = EpisodeQuota(episodes=5, num_envs=3)
    assert quota.quota == [2, 2, 1]
    for env_index in (2, 2, 0, 1, 0, 1):
        quota.add(env_index, score=float(env_index), length=1)
    assert quota.full
    assert [score for score, _ in quota.episodes] == [0.0, 0.0, 1.0, 1.0, 2.0]


def test_motion_counts_the_pixels_that_changed_between_the_two_newest_frames():
    """What picks the imagination picture's start state (the recorded one that moved most)."""
    stack = np.zeros((4, 84, 84), np.uint8)
    assert _motion(stack, 1) == 0  # a serve not yet fired: nothing moves
    stack[-1, 40:42, 10:13] = 200  # the ball appears in the newest frame
    assert _motion(stack, 1) == 6
    assert _motion(stack[-1:], 1) == 0  # one frame: no motion to see
    rgb_stack = np.zeros((6, 8, 8), np.uint8)  # two RGB frames
    rgb_stack[3:, 0, 0] = 1
    assert _motion(rgb_stack, 3) == 3
