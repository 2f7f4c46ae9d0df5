"""Cluster scale: the cluster configs, the resources they offer against what the documented
commands ask for, and cluster-mode runs on a real local Ray head.

Fast checks (no Ray started):
  * cluster/aws.yaml is a valid Ray cluster-launcher config (Ray's own schema), keeps token
    auth on, binds the dashboard to 127.0.0.1 and opens no dashboard port;
  * the KubeRay RayCluster/RayJob carry head, CPU and GPU groups, token auth, ClusterIP
    only, a shared volume and a NetworkPolicy that still admits the job submitter;
  * every training/sweep/pretraining command in cluster/README.md and the RayJob entrypoint,
    parsed with the scripts' own argument parsers, can be placed on the cluster it targets
    (RLlib's own bundle functions, packed onto the nodes).
  * --env-runner-resources / --learner-resources: the documented commands pin EnvRunners
    and learners to their group's custom resources, and a resource the joined cluster
    does not offer is refused before training.
Slow (marked `slow`): a `ray start --head --block` child process with token auth and an
`env_runner_node` resource, then `ray job submit` of the tiny pipeline (its EnvRunner
pinned to that resource), of a job asking for a resource no node offers, and of a failing
job, and a 2-trial sweep.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
AWS_YAML = CLUSTER / "aws.yaml"
RAYCLUSTER_YAML = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB_YAML = CLUSTER / "kuberay" / "rayjob.yaml"
CLUSTER_README = CLUSTER / "README.md"
# The tests run with the project's interpreter; its `ray` starts the head, so Ray's
# workers (and the job's `python`, first on PATH) are the same virtualenv.
BIN = Path(sys.executable).parent
RAY = str(BIN / "ray")
# What `ray job submit --working-dir` must not upload (also .gitignore'd).
UPLOAD_EXCLUDES = [".git", ".venv", "runs"]
TINY_PIPELINE = (
    "--collect-policy-steps 0 --collect-transitions 400 --pretrain-epochs 1 --pretrain-workers 2 --stop-iters 2 "
    "--train-batch-size 128 --minibatch-size 64 --num-epochs 1 "
    "--num-envs-per-env-runner 4 --evaluation-episodes 1"
).split()
# Paths every node sees (aws.yaml mounts EFS here; the KubeRay Pods mount the PVC here).
SHARED_MOUNTS = ("/mnt/efs/", "/mnt/shared/")


# --------------------------------------------------------------------------- loading


def _load_all(path: Path) -> List[dict]:
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def _kind(docs: List[dict], kind: str) -> List[dict]:
    return [d for d in docs if d.get("kind") == kind]


def _load_script(name: str):
    """The module of a tuned_examples script (its `parser` is the one users get)."""
    path = REPO / "tuned_examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_cluster_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def aws() -> dict:
    with open(AWS_YAML) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def scripts() -> Dict[str, argparse.ArgumentParser]:
    from i2a_rllib.cli import build_parser

    return {
        "i2a.py": _load_script("i2a").parser,
        "i2a_sweep.py": _load_script("i2a_sweep").parser,
        "i2a": build_parser(),
    }


# --------------------------------------------------------------------------- resource model


def _quantity(value) -> float:
    """A Kubernetes CPU/GPU quantity ('30', '500m', 4) as a number."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def aws_nodes(config: dict) -> List[Dict[str, float]]:
    """Ray resources of the nodes up right after `ray up` (min_workers of each group).

    GPUs must be there when a job starts: tuned_examples/i2a.py refuses to wait for them.
    """
    nodes = []
    for name, node_type in config["available_node_types"].items():
        count = 1 if name == config["head_node_type"] else node_type.get("min_workers", 0)
        nodes += [dict(node_type["resources"]) for _ in range(count)]
    return nodes


def _kuberay_group_resources(group: dict) -> Dict[str, float]:
    container = group["template"]["spec"]["containers"][0]
    limits = container.get("resources", {}).get("limits", {})
    params = group.get("rayStartParams") or {}
    resources = {
        "CPU": _quantity(params.get("num-cpus", limits.get("cpu", 0))),
        "GPU": _quantity(params.get("num-gpus", limits.get("nvidia.com/gpu", 0))),
    }
    resources.update({k: _quantity(v) for k, v in (group.get("resources") or {}).items()})
    return resources


def kuberay_nodes(spec: dict) -> List[Dict[str, float]]:
    nodes = [_kuberay_group_resources(spec["headGroupSpec"])]
    for group in spec["workerGroupSpecs"]:
        nodes += [_kuberay_group_resources(group) for _ in range(int(group["replicas"]))]
    return nodes


def fits(bundles: List[Dict[str, float]], nodes: List[Dict[str, float]]) -> bool:
    """First-fit decreasing: can every bundle be placed whole on some node at once?"""
    free = [dict(node) for node in nodes]
    for bundle in sorted(bundles, key=lambda b: (b.get("GPU", 0), b.get("CPU", 0)), reverse=True):
        for node in free:
            if all(node.get(k, 0) >= v for k, v in bundle.items() if v):
                for k, v in bundle.items():
                    node[k] = node.get(k, 0) - v
                break
        else:
            return False
    return True


def training_bundles(args: argparse.Namespace) -> List[Dict[str, float]]:
    """The placement group one training run (one Tune trial) reserves: RLlib's own bundle
    functions over the config the flags describe (what `apply_script_args` sets, minus its
    check against a live cluster)."""
    from ray.rllib.algorithms.utils import (
        _get_env_runner_bundles,
        _get_learner_bundles,
        _get_main_process_bundle,
    )

    from i2a_rllib.experiment import apply_scaling_flags
    from i2a_rllib.pipeline import build_i2a_config

    config = apply_scaling_flags(build_i2a_config(args), args)
    config.learners(num_gpus_per_learner=args.num_gpus_per_learner or 0)
    return (
        [_get_main_process_bundle(config)]
        + _get_env_runner_bundles(config)
        + _get_learner_bundles(config)
    )


def requests_of(script: str, args: argparse.Namespace) -> Dict[str, List[Dict[str, float]]]:
    """Every placement a command needs at some point, by stage."""
    if script == "i2a":
        if args.command == "pretrain":
            return {"pretrain": [{"CPU": 1, "GPU": 1 if args.use_gpu else 0}] * args.num_workers}
        return {"collect": [{"CPU": 1}] * args.num_actors}
    per_trial = training_bundles(args)
    if script == "i2a_sweep.py":
        trials = len(args.rollout_depths) * args.num_samples
        concurrent = min(trials, args.max_concurrent_trials or trials)
        return {"train": per_trial * concurrent}
    stages = {"train": per_trial}
    if not args.env_model_checkpoint and args.env_model != "copy":
        gpu = 1 if args.num_gpus_per_learner else 0
        stages["collect"] = [{"CPU": 1}] * args.collect_actors
        stages["pretrain"] = [{"CPU": 1, "GPU": gpu}] * args.pretrain_workers
    return stages


def documented_commands(text: str) -> Iterator[Tuple[str, List[str]]]:
    """(script, argv) of every `python tuned_examples/...` and `i2a pretrain|collect`
    command in the ```bash blocks of a markdown text."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
    for line in re.sub(r"\\\n\s*", " ", "\n".join(blocks)).splitlines():
        for script in ("i2a.py", "i2a_sweep.py"):
            marker = f"python tuned_examples/{script}"
            if marker in line:
                yield script, shlex.split(line.split(marker, 1)[1], comments=True)
        match = re.search(r"(?:^|\s)i2a (pretrain|collect)\s(.*)", line)
        if match:
            yield "i2a", [match.group(1)] + shlex.split(match.group(2), comments=True)


def _parse(parsers, script: str, argv: List[str]) -> argparse.Namespace:
    try:
        return parsers[script].parse_args(argv)
    except SystemExit:
        pytest.fail(f"`{script} {shlex.join(argv)}` is not accepted by the script's own parser")


def _check_placeable(stages, nodes, what: str) -> None:
    for stage, bundles in stages.items():
        assert fits(bundles, nodes), (
            f"{what}: stage {stage!r} asks for {len(bundles)} bundles "
            f"(CPU {sum(b.get('CPU', 0) for b in bundles):g}, GPU "
            f"{sum(b.get('GPU', 0) for b in bundles):g}) that the nodes {nodes} cannot hold"
        )


def _group_totals(nodes, has_gpu: bool) -> Dict[str, float]:
    """Every resource summed over the worker group with (or without) GPUs."""
    totals: Dict[str, float] = {}
    for node in nodes:
        if (node.get("GPU", 0) > 0) == has_gpu and node.get("CPU", 0) > 0:
            for name, amount in node.items():
                totals[name] = totals.get(name, 0) + amount
    return totals


def _check_groups(args, nodes, what: str) -> None:
    """The plain inequalities: learners x GPUs and x custom resources <= GPU group;
    EnvRunners and EnvRunners x custom resources <= CPU group."""
    learners = args.num_learners or 0
    gpus_needed = learners * (args.num_gpus_per_learner or 0)
    gpu_group = _group_totals(nodes, has_gpu=True)
    cpu_group = _group_totals(nodes, has_gpu=False)
    assert gpu_group.get("GPU", 0) >= gpus_needed, (
        f"{what}: {learners} learners x {args.num_gpus_per_learner} GPUs > "
        f"{gpu_group.get('GPU', 0):g} GPUs in the GPU group: the learner group cannot be placed"
    )
    runners = args.num_env_runners if args.num_env_runners is not None else 1
    assert cpu_group.get("CPU", 0) >= runners, f"{what}: {runners} EnvRunners > {cpu_group.get('CPU', 0):g} CPUs"
    for name, amount in (args.env_runner_resources or {}).items():
        offered = cpu_group.get(name, 0)
        assert runners * amount <= offered, (
            f"{what}: {runners} EnvRunners x {amount:g} {name!r} > {offered:g} in the CPU group: "
            "the EnvRunners cannot be placed"
        )
    for name, amount in (args.learner_resources or {}).items():
        offered = gpu_group.get(name, 0)
        assert learners * amount <= offered, (
            f"{what}: {learners} learners x {amount:g} {name!r} > {offered:g} in the GPU group: "
            "the learner group cannot be placed"
        )


def _check_pinned(args, what: str) -> None:
    """Training commands keep EnvRunners on the CPU group and GPU learners on the GPU group."""
    assert args.env_runner_resources == {"env_runner_node": 1}, (
        f"{what}: pass --env-runner-resources '{{\"env_runner_node\": 1}}' (or EnvRunners may "
        "land on GPU nodes)"
    )
    gpu_learners = (args.num_learners or 0) > 0 and (args.num_gpus_per_learner or 0) > 0
    expected = {"learner_node": 1} if gpu_learners else None
    assert args.learner_resources == expected, f"{what}: --learner-resources should be {expected}"


# --------------------------------------------------------------------------- aws.yaml


def test_aws_yaml_passes_rays_cluster_launcher_schema(aws):
    from ray.autoscaler._private.util import prepare_config, validate_config

    # Fills Ray's AWS defaults exactly as `ray up` does, then validates (jsonschema).
    prepared = prepare_config(json.loads(json.dumps(aws)))
    validate_config(prepared)
    # The defaults Ray would fill in bind the dashboard to 0.0.0.0: ours must win.
    assert prepared["head_start_ray_commands"] == aws["head_start_ray_commands"]


def test_aws_yaml_has_a_cpu_head_and_cpu_and_gpu_worker_groups(aws):
    types = aws["available_node_types"]
    head = types[aws["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] == 0
    workers = {name: t for name, t in types.items() if name != aws["head_node_type"]}
    cpu = [t for t in workers.values() if not t["resources"].get("GPU")]
    gpu = [t for t in workers.values() if t["resources"].get("GPU")]
    assert len(cpu) == 1 and len(gpu) == 1
    assert cpu[0]["resources"]["env_runner_node"] >= 1 and cpu[0]["resources"]["CPU"] >= 1
    assert gpu[0]["resources"]["learner_node"] >= 1
    # GPUs present when a job starts (the training script checks them up front).
    assert gpu[0]["min_workers"] >= 1
    # CUDA torch on GPU nodes, the CPU build everywhere else; the project on all of them.
    assert "-gpu" in gpu[0]["docker"]["worker_image"]
    gpu_setup = " ".join(gpu[0]["worker_setup_commands"])
    assert "whl/cpu" not in gpu_setup and "pip install --quiet -e ~/i2a_rllib" in gpu_setup
    for commands in (cpu[0]["worker_setup_commands"], aws["head_setup_commands"]):
        text = " ".join(commands)
        assert "download.pytorch.org/whl/cpu" in text and "-e ~/i2a_rllib" in text
        assert text.index("torch") < text.index("-e ~/i2a_rllib")  # CPU torch first
    assert aws["file_mounts"]["~/i2a_rllib"] == "."


def test_aws_yaml_keeps_token_auth_and_a_private_dashboard(aws):
    text = AWS_YAML.read_text()
    assert not re.search(r"RAY_AUTH_MODE\s*=\s*disabled", text)
    starts = aws["head_start_ray_commands"] + aws["worker_start_ray_commands"]
    ray_starts = [c for c in starts if "ray start" in c]
    assert len(ray_starts) == 2
    for command in ray_starts:
        assert "RAY_AUTH_MODE=token ray start" in command, command
        assert "0.0.0.0" not in command
    head = next(c for c in aws["head_start_ray_commands"] if "ray start" in c)
    assert "--dashboard-host=127.0.0.1" in head
    # The same token on every node (file_mounts reach the workers through the head).
    assert "~/.ray/auth_token" in aws["file_mounts"]
    # Only Ray's defaults (intra-cluster + SSH): no rule that could open 8265/10001/6379.
    for rule in aws["provider"].get("security_group", {}).get("IpPermissions", []):
        low, high = rule.get("FromPort", -1), rule.get("ToPort", -1)
        for port in (8265, 10001, 6379):
            assert not (low == -1 or low <= port <= high), rule
    for node_type in aws["available_node_types"].values():
        assert "SecurityGroupIds" not in node_type["node_config"]


# --------------------------------------------------------------------------- KubeRay


@pytest.fixture(scope="module", params=["raycluster", "rayjob"])
def kuberay(request) -> Tuple[str, List[dict], dict]:
    """(name, all documents, the RayCluster spec) of each manifest file."""
    if request.param == "raycluster":
        docs = _load_all(RAYCLUSTER_YAML)
        (cluster,) = _kind(docs, "RayCluster")
        return "raycluster", docs, cluster["spec"]
    docs = _load_all(RAYJOB_YAML)
    (job,) = _kind(docs, "RayJob")
    return "rayjob", docs, job["spec"]["rayClusterSpec"]


def _scalars(node) -> Iterator:
    """Every scalar value anywhere in parsed YAML (comments are not values)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _scalars(value)
    elif isinstance(node, list):
        for value in node:
            yield from _scalars(value)
    else:
        yield node


def _pod_templates(spec: dict) -> List[dict]:
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


def test_kuberay_groups_resources_and_shared_volume(kuberay):
    _, docs, spec = kuberay
    assert spec["rayVersion"].startswith("2.60")
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    head_limits = spec["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert "nvidia.com/gpu" not in head_limits
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu = [g for g in groups.values() if _kuberay_group_resources(g)["GPU"] > 0]
    cpu = [g for g in groups.values() if _kuberay_group_resources(g)["GPU"] == 0]
    assert len(gpu) == 1 and len(cpu) == 1
    container = gpu[0]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == container["resources"]["requests"]["nvidia.com/gpu"]
    assert "learner_node" in gpu[0]["resources"] and "env_runner_node" in cpu[0]["resources"]
    # CUDA torch where the GPUs are, the CPU build elsewhere (cluster/README.md builds both).
    assert container["image"].endswith("-gpu")
    for template in (spec["headGroupSpec"]["template"], cpu[0]["template"]):
        assert template["spec"]["containers"][0]["image"].endswith("-cpu")
    (claim,) = _kind(docs, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for template in _pod_templates(spec):
        pod = template["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert volumes[mounts["/mnt/shared"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_kuberay_token_auth_clusterip_only_and_network_policy(kuberay):
    name, docs, spec = kuberay
    assert spec["authOptions"]["mode"] == "token" and spec["authOptions"]["secretName"]
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    assert not head.get("enableIngress", False)
    # No dashboard-host: KubeRay then starts the head with --dashboard-host=0.0.0.0, which
    # inside the Pod's own network namespace is its loopback and Pod IP (the operator and
    # the submitter need the latter). Nothing may put it on the node's interfaces.
    assert "dashboard-host" not in head["rayStartParams"]
    for template in _pod_templates(spec):
        assert not template["spec"].get("hostNetwork", False), "Ray Pods keep their own network"
        for container in template["spec"]["containers"]:
            for port in container.get("ports", []):
                assert "hostPort" not in port, f"{port} would publish the port on the node"
    for doc in docs:
        assert doc["kind"] not in ("Ingress", "Service"), "no extra Service/Ingress in front of Ray"
    values = list(_scalars(docs))
    assert "LoadBalancer" not in values and "NodePort" not in values
    for template in _pod_templates(spec):
        for env in template["spec"]["containers"][0].get("env", []):
            assert not (env["name"] == "RAY_AUTH_MODE" and env.get("value") != "token")
    (policy,) = _kind(docs, "NetworkPolicy")
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.get("ray.io/node-type") == "head" and policy["spec"]["policyTypes"] == ["Ingress"]
    head_labels = head["template"]["metadata"]["labels"]
    own = {k: v for k, v in selector.items() if not k.startswith("ray.io/")}
    assert own.items() <= head_labels.items(), "the policy must select this head"
    rules = policy["spec"]["ingress"]
    assert all(rule.get("from") for rule in rules), "no rule may admit any source"
    allowed = [p["podSelector"]["matchLabels"] for r in rules for p in r["from"] if "namespaceSelector" not in p]
    for template in _pod_templates(spec):
        labels = template["metadata"]["labels"]
        assert any(a.items() <= labels.items() for a in allowed), "Ray Pods must reach the head"
    if name == "rayjob":
        (job,) = _kind(docs, "RayJob")
        labels = job["spec"]["submitterPodTemplate"]["metadata"]["labels"]
        assert any(a.items() <= labels.items() for a in allowed), "the submitter must reach the head"


def test_rayjob_runs_the_training_script_from_a_working_dir():
    (job,) = _kind(_load_all(RAYJOB_YAML), "RayJob")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["python", "tuned_examples/i2a.py"]
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert runtime_env["working_dir"].endswith(".zip")
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    storage = argv[argv.index("--storage-path") + 1]
    assert storage.startswith("/mnt/shared/"), "results must be on the shared volume"


# --------------------------------------------------------------------------- resource math


def test_rayjob_entrypoint_fits_its_cluster(scripts):
    (job,) = _kind(_load_all(RAYJOB_YAML), "RayJob")
    argv = shlex.split(job["spec"]["entrypoint"])[2:]
    args = _parse(scripts, "i2a.py", argv)
    nodes = kuberay_nodes(job["spec"]["rayClusterSpec"])
    assert (args.num_env_runners, args.num_learners, args.num_gpus_per_learner) == (64, 4, 1)
    _check_pinned(args, "rayjob.yaml entrypoint")
    _check_groups(args, nodes, "rayjob.yaml entrypoint")
    _check_placeable(requests_of("i2a.py", args), nodes, "rayjob.yaml entrypoint")


def test_readme_commands_parse_and_fit_both_clusters(scripts, aws):
    commands = list(documented_commands(CLUSTER_README.read_text()))
    found = {script for script, _ in commands}
    assert found == {"i2a.py", "i2a_sweep.py", "i2a"}, found
    assert sum(script == "i2a" for script, _ in commands) >= 2  # collect + pretrain
    (raycluster,) = _kind(_load_all(RAYCLUSTER_YAML), "RayCluster")
    clusters = {"aws.yaml": aws_nodes(aws), "raycluster.yaml": kuberay_nodes(raycluster["spec"])}
    for script, argv in commands:
        args = _parse(scripts, script, argv)
        what = f"cluster/README.md: {script} {shlex.join(argv)[:80]}..."
        for path_flag in ("storage_path", "env_model_checkpoint", "data", "output"):
            path = getattr(args, path_flag, None)
            if path and (script != "i2a.py" or path_flag != "output"):
                assert path.startswith(SHARED_MOUNTS), f"{what}: {path} is not on shared storage"
        if script != "i2a":
            _check_pinned(args, what)
        for cluster, nodes in clusters.items():
            if script != "i2a":
                _check_groups(args, nodes, f"{what} on {cluster}")
            _check_placeable(requests_of(script, args), nodes, f"{what} on {cluster}")


def test_resource_check_rejects_jobs_the_clusters_cannot_place(scripts, aws):
    nodes = aws_nodes(aws)
    too_many_learners = _parse(
        scripts, "i2a.py", "--num-env-runners 8 --num-learners 8 --num-gpus-per-learner 1".split()
    )
    with pytest.raises(AssertionError, match="learner group cannot be placed"):
        _check_groups(too_many_learners, nodes, "8 learners")
    assert not fits(requests_of("i2a.py", too_many_learners)["train"], nodes)
    too_many_runners = _parse(scripts, "i2a.py", "--num-env-runners 200".split())
    assert not fits(requests_of("i2a.py", too_many_runners)["train"], nodes)
    # A learner never spans nodes: 2 GPUs each on 1-GPU nodes does not fit even with 4 GPUs.
    split = _parse(scripts, "i2a.py", "--num-learners 2 --num-gpus-per-learner 2".split())
    one_gpu_nodes = [{"CPU": 4, "GPU": 1}] * 4 + [{"CPU": 32}]
    assert not fits(requests_of("i2a.py", split)["train"], one_gpu_nodes)
    # More EnvRunners than env_runner_node units: refused although the CPUs would do.
    pinned = _parse(scripts, "i2a.py", ["--num-env-runners", "40", "--env-runner-resources", '{"env_runner_node": 1}'])
    few_units = [{"CPU": 0}, {"CPU": 64, "env_runner_node": 32}, {"CPU": 16, "GPU": 4, "learner_node": 4}]
    with pytest.raises(AssertionError, match="the EnvRunners cannot be placed"):
        _check_groups(pinned, few_units, "40 pinned EnvRunners")
    assert not fits(requests_of("i2a.py", pinned)["train"], few_units)
    learners = _parse(
        scripts, "i2a.py",
        ["--num-learners", "4", "--num-gpus-per-learner", "1", "--learner-resources", '{"learner_node": 2}'],
    )  # fmt: skip
    with pytest.raises(AssertionError, match="learner group cannot be placed"):
        _check_groups(learners, nodes, "4 learners x 2 learner_node")


def test_env_runner_resources_keep_env_runners_off_the_gpu_nodes(scripts):
    """Why the flag: by CPUs alone, EnvRunners fit only by spilling onto the GPU node."""
    nodes = [{"CPU": 0}, {"CPU": 4, "env_runner_node": 4}, {"CPU": 16, "GPU": 4, "learner_node": 4}]
    argv = ["--num-env-runners", "8", "--num-learners", "1", "--num-gpus-per-learner", "1"]
    spilling = requests_of("i2a.py", _parse(scripts, "i2a.py", argv))["train"]
    assert fits(spilling, nodes)
    pinned = _parse(scripts, "i2a.py", argv + ["--env-runner-resources", '{"env_runner_node": 1}'])
    bundles = requests_of("i2a.py", pinned)["train"]
    assert sum(b.get("env_runner_node", 0) for b in bundles) == 8  # RLlib puts it in the bundles
    assert not fits(bundles, nodes)


@pytest.mark.parametrize(
    "argv, cluster, message",
    [
        (["--num-env-runners", "2", "--env-runner-resources", '{"env_runner_node": 1}'], {"CPU": 2.0},
         "--env-runner-resources asks for 'env_runner_node', which no node of this Ray cluster offers; "
         "start the nodes with --resources '{\"env_runner_node\": N}'"),
        (["--num-learners", "1", "--learner-resources", '{"learner_node": 1}'], {"CPU": 2.0, "env_runner_node": 2.0},
         "--learner-resources asks for 'learner_node', which no node of this Ray cluster offers"),
        (["--num-learners", "0", "--learner-resources", '{"learner_node": 1}'], {"CPU": 2.0, "learner_node": 1.0},
         "--learner-resources places remote actors, and there are none: the learner runs inside the "
         "algorithm's driver actor; set --num-learners >= 1 or drop the flag."),
        (["--num-env-runners", "0", "--env-runner-resources", '{"env_runner_node": 1}'], {"CPU": 2.0, "env_runner_node": 2.0},
         "--env-runner-resources places remote actors, and there are none"),
    ],
    ids=["env-runner-resource-missing", "learner-resource-missing", "no-remote-learner", "no-remote-env-runner"],
)  # fmt: skip
def test_apply_script_args_refuses_custom_resources_the_cluster_lacks(scripts, monkeypatch, argv, cluster, message):
    """No Ray needed: the check reads `ray.cluster_resources()` of the joined cluster."""
    import ray

    from i2a_rllib.experiment import apply_script_args
    from i2a_rllib.pipeline import build_i2a_config

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "cluster_resources", lambda: dict(cluster))
    args = _parse(scripts, "i2a.py", argv)
    with pytest.raises(ValueError) as refused:
        apply_script_args(build_i2a_config(args), args)
    assert message in str(refused.value)


def test_apply_script_args_sets_custom_resources_the_cluster_offers(scripts, monkeypatch):
    import ray

    from i2a_rllib.experiment import apply_script_args
    from i2a_rllib.pipeline import build_i2a_config

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 8.0, "env_runner_node": 4.0, "learner_node": 1.0})
    argv = ["--num-env-runners", "2", "--num-learners", "1", "--env-runner-resources", '{"env_runner_node": 1}',
            "--learner-resources", '{"learner_node": 1}']  # fmt: skip
    args = _parse(scripts, "i2a.py", argv)
    config = apply_script_args(build_i2a_config(args), args)
    assert config.custom_resources_per_env_runner == {"env_runner_node": 1}
    assert config.custom_resources_per_learner == {"learner_node": 1}
    # Without the flags (every local run) nothing custom is asked for.
    plain = _parse(scripts, "i2a.py", ["--num-env-runners", "2"])
    config = apply_script_args(build_i2a_config(plain), plain)
    assert config.custom_resources_per_env_runner == {} and not config.custom_resources_per_learner


@pytest.mark.parametrize("argv, depth", [([], "auto"), (["--rollout-depth", "auto"], "auto"), (["--rollout-depth", "3"], 3)])
def test_the_tuned_example_leaves_the_rollout_depth_to_the_env_model(scripts, argv, depth):
    """The Breakout example (and so `i2a train`, which takes its flags) defaults to
    'auto' (2 for the spatial models, 5 else, resolved by the module); a number is
    taken as given."""
    from i2a_rllib.pipeline import build_i2a_config

    assert build_i2a_config(_parse(scripts, "i2a.py", argv)).rollout_depth == depth


@pytest.mark.parametrize(
    "value, message",
    [
        ('{"CPU": 1}', "--env-runner-resources takes custom resources only, not 'CPU'"),
        ('{"env_runner_node": 0}', "the amount of 'env_runner_node' must be a number > 0"),
        ('{"env_runner_node": "one"}', "the amount of 'env_runner_node' must be a number > 0"),
        ('env_runner_node=1', "--env-runner-resources must be a JSON object"),
    ],
)
def test_custom_resource_flags_reject_bad_values(scripts, capsys, value, message):
    with pytest.raises(SystemExit) as exit_:
        scripts["i2a.py"].parse_args(["--env-runner-resources", value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_sweep_refuses_to_run_without_an_env_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "tuned_examples/i2a_sweep.py", "--storage-path", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "--env-model-checkpoint" in result.stderr and "--env-model copy" in result.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written before the settings are checked"


# --------------------------------------------------------------------------- a real local head


def _free_ports(count: int) -> List[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("", 0))  # GCS binds every interface: the port must be free on all
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def _session_pids(session_id: int) -> List[int]:
    """Processes of the session the head was started in (the head and its children)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id:  # field 6 of stat: session id
            pids.append(int(entry))
    return pids


def _listening_addresses(port: int) -> List[str]:
    """Local addresses of sockets listening on `port` (Linux /proc/net)."""
    found = []
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not os.path.exists(path):
            continue
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A = LISTEN
                continue
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(socket.inet_ntop(family, raw))
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


class LocalHead:
    def __init__(self, root: Path):
        self.root = root
        self.token = root / "token"
        self.token.write_text(secrets.token_hex(32))
        self.token.chmod(0o600)
        self.gcs_port, self.dashboard_port, client_port, agent_port = _free_ports(4)
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
        # An activated virtualenv: the job's `python` is this interpreter.
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        self.env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token)}
        # A throwaway head serves nothing: skip the 30 s drain on SIGTERM.
        self.env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "3"
        self.log = root / "head.log"
        self.command = [
            RAY, "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
            "--port", str(self.gcs_port), "--dashboard-port", str(self.dashboard_port),
            "--ray-client-server-port", str(client_port),
            "--dashboard-agent-listen-port", str(agent_port),
            "--num-cpus", "2", "--temp-dir", str(root / "t"),
            # As aws.yaml's CPU group: one env_runner_node per CPU.
            "--resources", json.dumps({"env_runner_node": 2}),
        ]  # fmt: skip
        self.process = None

    def start(self, timeout: float = 120) -> None:
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited:\n{self.log.read_text()[-3000:]}")
            if self.ray("job", "list", timeout=30).returncode == 0:
                return
            time.sleep(2)
        raise RuntimeError(f"the job API never answered:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Stops only what this head started: SIGTERM to `ray start --block` (it drains and
        stops its children), then SIGKILL to whatever of its session is left."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.time() + 15
        while _session_pids(self.process.pid) and time.time() < deadline:
            time.sleep(0.5)
        for pid in _session_pids(self.process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.wait(timeout=10)

    def ray(self, *args, env=None, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [RAY, *args]
        if args[:1] == ("job",) and "--address" not in args:
            command[3:3] = ["--address", self.address]
        return subprocess.run(
            command, env=env or self.env, cwd=REPO, capture_output=True, text=True, timeout=timeout
        )

    def submit(self, entrypoint: List[str], submission_id: str) -> None:
        result = self.ray(
            "job", "submit", "--no-wait", "--submission-id", submission_id,
            "--working-dir", str(REPO),
            "--runtime-env-json", json.dumps({"excludes": UPLOAD_EXCLUDES}),
            "--", *entrypoint,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr

    def wait(self, submission_id: str, timeout: float) -> Tuple[str, str]:
        """Follows the logs to the end; returns (final status, logs)."""
        self.ray("job", "logs", "--follow", submission_id, timeout=timeout)
        status = subprocess.run(
            [sys.executable, "-c",
             "import sys; from ray.job_submission import JobSubmissionClient as C; "
             "print(C(sys.argv[1]).get_job_status(sys.argv[2]).value)",
             self.address, submission_id],
            env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        logs = self.ray("job", "logs", submission_id)
        assert status.returncode == 0, status.stderr
        return status.stdout.strip().splitlines()[-1], logs.stdout


@pytest.fixture(scope="class")
def local_head():
    # Short root: Ray's Unix socket paths live under it (~107 characters at most).
    root = Path(tempfile.mkdtemp(prefix="ray_i2a_", dir="/tmp"))
    head = LocalHead(root)
    try:
        head.start()
        yield head
    finally:
        head.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
class TestJobsOnALocalHead:
    """`ray job submit` against a token-authenticated head started with `ray start`."""

    def test_job_api_needs_the_token_and_listens_on_loopback_only(self, local_head):
        listening = _listening_addresses(local_head.dashboard_port)
        if os.path.exists("/proc/net/tcp"):
            assert listening and all(_is_loopback(a) for a in listening), listening
        ok = local_head.ray("job", "list")
        assert ok.returncode == 0, ok.stderr
        anonymous = {k: v for k, v in local_head.env.items() if not k.startswith("RAY_AUTH")}
        missing = local_head.ray("job", "list", env={**anonymous, "RAY_AUTH_MODE": "disabled"})
        assert missing.returncode != 0 and "Missing authentication token" in missing.stderr
        wrong = local_head.root / "wrong_token"
        wrong.write_text(secrets.token_hex(32))
        forged = local_head.ray("job", "list", env={**local_head.env, "RAY_AUTH_TOKEN_PATH": str(wrong)})
        assert forged.returncode != 0 and "Invalid authentication token" in forged.stderr

    def test_job_runs_the_uploaded_code_with_the_venv_python(self, local_head):
        job = f"i2a-where-{uuid.uuid4().hex[:8]}"
        probe = (
            "import json, os, sys, i2a_rllib; print('[where]', json.dumps({'prefix': sys.prefix, "
            "'package': i2a_rllib.__file__, 'cwd': os.getcwd(), 'files': sorted(os.listdir('.'))}))"
        )
        local_head.submit(["python", "-c", probe], job)
        status, logs = local_head.wait(job, timeout=120)
        assert status == "SUCCEEDED", logs
        where = json.loads(logs.split("[where] ", 1)[1].splitlines()[0])
        assert Path(where["prefix"]).resolve() == Path(sys.prefix).resolve()
        assert Path(where["package"]).parent.parent == Path(where["cwd"])  # the uploaded copy
        assert Path(where["cwd"]) != REPO and "working_dir_files" in where["cwd"]
        assert {"i2a_rllib", "tuned_examples", "cluster"} <= set(where["files"])
        assert not set(UPLOAD_EXCLUDES) & set(where["files"]), where["files"]

    def test_tiny_pipeline_job_succeeds_and_writes_a_checkpoint(self, local_head, tmp_path):
        job = f"i2a-tiny-{uuid.uuid4().hex[:8]}"
        local_head.submit(
            ["python", "tuned_examples/i2a.py", *TINY_PIPELINE, "--storage-path", str(tmp_path), "--name", "tiny",
             "--env-runner-resources", json.dumps({"env_runner_node": 1}),
             "--env-model-hparams", json.dumps({"latent_size": 32}), "--env-model", "latent", "--pretrain-lr", "5e-4",  # fastest to evaluate
             "--pretrain-lr-schedule", "cosine"],
            job,
        )  # fmt: skip
        status, logs = local_head.wait(job, timeout=400)
        assert status == "SUCCEEDED", logs[-4000:]
        # Stage 2 trained the model the pipeline flags describe.
        metadata = json.loads((tmp_path / "tiny" / "env_model" / "env_model" / "metadata.json").read_text())
        assert (metadata["kind"], metadata["hparams"]["latent_size"]) == ("latent", 32)
        assert (metadata["training"]["lr"], metadata["training"]["lr_schedule"]) == (5e-4, "cosine")
        (params,) = (tmp_path / "tiny" / "train").glob("*/params.json")
        assert json.loads(params.read_text())["custom_resources_per_env_runner"] == {"env_runner_node": 1}
        checkpoints = re.findall(r"^\[i2a\]\s+checkpoint:\s+(\S+)\s*$", logs, flags=re.M)
        assert checkpoints, logs[-4000:]
        checkpoint = Path(checkpoints[-1])
        assert checkpoint.is_dir() and (checkpoint / "algorithm_state.pkl").is_file()
        assert (tmp_path / "tiny" / "train") in checkpoint.parents
        env_model = re.findall(r"^\[i2a\]\s+env_model:\s+(\S+)\s*$", logs, flags=re.M)
        assert env_model and Path(env_model[-1]).is_dir()  # stage 2 ran on the cluster
        assert "stage 4: evaluate" in logs

    def test_a_failing_job_is_reported_failed_with_its_error_before_training(self, local_head, tmp_path):
        """A job asking for a resource no node offers fails with that one-line error,
        is reported FAILED (`ray job status` too) and leaves no run directory."""
        job = f"i2a-nores-{uuid.uuid4().hex[:8]}"
        local_head.submit(
            ["python", "tuned_examples/i2a.py", "--env-model", "copy", "--num-learners", "1",
             "--learner-resources", json.dumps({"learner_node": 1}), "--storage-path", str(tmp_path)],
            job,
        )  # fmt: skip
        status, logs = local_head.wait(job, timeout=180)
        assert status == "FAILED", logs[-4000:]
        assert "--learner-resources asks for 'learner_node', which no node of this Ray cluster offers" in logs
        assert "Traceback" not in logs
        described = local_head.ray("job", "status", job)
        assert "failed" in described.stdout + described.stderr
        assert not any(tmp_path.iterdir()), "a refused resource request must not leave a run directory"


# --------------------------------------------------------------------------- sweep


@pytest.mark.slow
def test_two_trial_sweep_reports_the_best_trial(tmp_path):
    choices = [0.5, 2.0]
    command = [
        sys.executable, "tuned_examples/i2a_sweep.py",
        # Short Sokoban episodes (8 steps): the ranked metric exists after one iteration.
        "--env", "I2A/Sokoban-v0", "--env-config", '{"max_steps": 8}', "--env-model", "copy",
        "--rollout-depths", "1", "3", "--num-samples", "1", "--max-concurrent-trials", "1",
        "--distillation-coeffs", *map(str, choices), "--lr-range", "1e-4", "1e-3",
        "--stop-iters", "1", "--train-batch-size", "64", "--minibatch-size", "32",
        "--num-epochs", "1", "--num-env-runners", "0", "--num-envs-per-env-runner", "4",
        "--storage-path", str(tmp_path), "--name", "sweep", "--verbose", "0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own embedded Ray
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "[i2a] trials:      2 (0 failed)" in result.stdout

    summary = json.loads((tmp_path / "sweep" / "best_trial.json").read_text())
    best = summary["best_config"]
    assert summary["num_trials"] == 2 and summary["num_errors"] == 0
    assert best["rollout_depth"] in (1, 3) and best["distillation_coeff"] in choices
    assert 1e-4 <= best["lr"] <= 1e-3
    assert summary["checkpoint"] and Path(summary["checkpoint"]).is_dir()
    assert f"[i2a] checkpoint: {summary['checkpoint']}" in result.stdout

    trials = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(trials) == 2
    depths, returns = set(), {}
    for trial in trials:
        assert list(trial.glob("events.out.tfevents.*")), f"no TensorBoard file in {trial}"
        depths.add(json.loads((trial / "params.json").read_text())["rollout_depth"])
        last = json.loads((trial / "result.json").read_text().splitlines()[-1])
        returns[str(trial)] = last["env_runners"]["episode_return_mean"]
    assert depths == {1, 3}, "the grid over rollout depth must be swept"
    assert returns[summary["best_trial_dir"]] == max(returns.values())


def test_learner_precision_flag_reaches_the_learner_config(scripts, capsys):
    from i2a_rllib.experiment import apply_scaling_flags
    from i2a_rllib.pipeline import build_i2a_config

    args = _parse(scripts, "i2a.py", ["--learner-precision", "bf16"])
    config = apply_scaling_flags(build_i2a_config(args), args)
    assert config.learner_config_dict["precision"] == "bf16"
    # Other learner settings (reward clipping) survive; no flag leaves fp32.
    assert "clip_rewards" in config.learner_config_dict
    plain = _parse(scripts, "i2a.py", [])
    assert "precision" not in apply_scaling_flags(build_i2a_config(plain), plain).learner_config_dict
    with pytest.raises(SystemExit) as exit_:
        scripts["i2a.py"].parse_args(["--learner-precision", "fp16"])
    assert exit_.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err


def test_snap_imagined_frames_flag_reaches_the_module_config(scripts):
    """`--snap-imagined-frames` (off by default) is what the RLModule is built with."""
    from i2a_rllib.pipeline import build_i2a_config

    for argv, expected in (([], False), (["--snap-imagined-frames"], True), (["--no-snap-imagined-frames"], False)):
        config = build_i2a_config(_parse(scripts, "i2a.py", argv))
        assert config.model_config["snap_imagined_frames"] is expected, argv


def test_imagination_precision_flag_reaches_the_module_config(scripts, capsys):
    """`--imagination-precision bf16` (auto by default) is what the RLModule is built with;
    an unknown precision is refused by the parser (exit 2)."""
    from i2a_rllib.pipeline import build_i2a_config

    for argv, expected in (([], "auto"), (["--imagination-precision", "bf16"], "bf16"),
                           (["--imagination-precision", "fp32"], "fp32")):  # fmt: skip
        config = build_i2a_config(_parse(scripts, "i2a.py", argv))
        assert config.model_config["imagination_precision"] == expected, argv
    with pytest.raises(SystemExit) as exit_:
        scripts["i2a.py"].parse_args(["--imagination-precision", "fp16"])
    assert exit_.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err
