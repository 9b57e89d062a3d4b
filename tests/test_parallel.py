"""`Session.enable_parallelism` hands diffusers' ContextParallelConfig to the video transformer(s) after checks.

diffusers' context parallelism places rank r on accelerator r, so the split itself runs only on GPUs
(`benchmarks/parallel_generate.py` under torchrun). What this machine can check: a wrong config, a family
without a transformer, a missing process group and degrees the world cannot hold are refused with an
InstructionError naming `parallelism`, the session keeps generating as before, and a valid config reaches
every denoiser (both experts of Wan 2.2 A14B).
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist

from ivcore import InstructionError, Session


@pytest.fixture
def wan():
    return Session.tiny(video="wan2.2-i2v-a14b")


@pytest.fixture
def world_of_one():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_refusals_name_the_field_and_leave_the_session_working(wan):
    from diffusers import ContextParallelConfig

    with pytest.raises(InstructionError, match="parallelism.*ContextParallelConfig"):
        wan.enable_parallelism({"ring_degree": 2})
    with pytest.raises(InstructionError, match="torchrun"):
        wan.enable_parallelism(ContextParallelConfig(ring_degree=2))
    with pytest.raises(InstructionError, match="DiT video family"):
        Session.tiny().enable_parallelism(ContextParallelConfig(ring_degree=2))
    wan.steps = 1
    assert wan.generate().frames.shape[0] == wan.num_frames


def test_degrees_must_fit_the_world(wan, world_of_one):
    from diffusers import ContextParallelConfig

    with pytest.raises(InstructionError, match="world size 1"):
        wan.enable_parallelism(ContextParallelConfig(ulysses_degree=2))


def test_a_valid_config_reaches_every_expert(wan, world_of_one, monkeypatch):
    from diffusers import ContextParallelConfig

    given = []
    for model in (wan.video_backend.pipe.transformer, wan.video_backend.pipe.transformer_2):
        monkeypatch.setattr(model, "enable_parallelism", lambda config, model=model: given.append((model, config)))
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)  # as under torchrun --nproc-per-node 2
    config = ContextParallelConfig(ring_degree=2)
    version = wan.video_backend.weights_version
    wan.enable_parallelism(config)
    pipe = wan.video_backend.pipe
    assert given == [(pipe.transformer, config), (pipe.transformer_2, config)]
    assert wan.video_backend.weights_version == version + 1  # cached denoising is not reused across the split
    assert torch.distributed.is_initialized()
