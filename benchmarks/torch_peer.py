r"""PyTorch peer of the gan_jax training iteration (DCGAN family and BEGAN), for side-by-side
timings.

DCGAN family: the networks have the layer shapes of `gan_jax.models.dcgan` (4x4 kernels, stride
2, BatchNorm with PyTorch momentum 0.1 = Flax 0.9 and eps 1e-5, ReLU / LeakyReLU(0.2), tanh)
and the iteration is the one of `gan_jax.core.step`: n_critic discriminator updates, each on its
own real batch with fresh z, then one generator update with fresh z; BatchNorm in training
mode; D sees the real and the generated batch in two separate forward passes.

BEGAN: the networks of `gan_jax.models.began` (3x3 conv + ELU layers, stride-2 3x3
down-sampling with linearly growing filters, nearest-neighbour up-sampling, N_h = N_z) and
the iteration of configs/began.py: D's and G's gradients both at the iteration's starting
parameters (simultaneous updates), separate z_D and z_G ~ U[-1, 1], then the k_t and M_global
update (Sec. 3.4), kept on the device.

This file depends only on torch and numpy, so it runs in an interpreter without JAX:

  /work/torchenv/bin/python benchmarks/torch_peer.py --objectives=non_saturating,began \
      --batch_sizes=64 --modes=eager,compile --iters=5

It prints one JSON document. `benchmarks/bench.py` calls it (in-process when torch is
importable next to JAX, else in a subprocess) with settings read from the gan_jax configs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# Settings of each objective as in configs/*.py; bench.py passes the values it reads from the
# configs instead, these are for standalone runs.
_ADAM = dict(name="adam", learning_rate=2e-4, b1=0.5, b2=0.999, eps=1e-8)
_DCGAN = dict(
  n_critic=1,
  disc_norm="batch",
  init="normal",
  clip=None,
  gp_weight=None,
  real_label=1.0,
  z_dim=100,
  optim_g=_ADAM,
  optim_d=_ADAM,
)
_RMSPROP = dict(name="rmsprop", learning_rate=5e-5, decay=0.99, eps=1e-8)
_ADAM_GP = dict(name="adam", learning_rate=1e-4, b1=0.5, b2=0.9, eps=1e-8)
DEFAULT_SETTINGS = {
  "minimax": _DCGAN,
  "non_saturating": _DCGAN,
  "lsgan": _DCGAN,
  "wgan": {**_DCGAN, "n_critic": 5, "clip": 0.01, "optim_g": _RMSPROP, "optim_d": _RMSPROP},
  "wgan_gp": {
    **_DCGAN,
    "n_critic": 5,
    "disc_norm": "none",
    "init": "xavier",
    "gp_weight": 10.0,
    "optim_g": _ADAM_GP,
    "optim_d": _ADAM_GP,
  },
  # configs/began.py: Adam(1e-4, β1 0.5) for both, N_h = N_z = 64, η = 1, γ 0.5, λ_k 0.001.
  "began": {
    "model": "began",
    "n_critic": 1,
    "init": "xavier",
    "hidden_dim": 64,
    "z_dim": 64,
    "eta": 1,
    "gamma": 0.5,
    "lambda_k": 0.001,
    "k_init": 0.0,
    "optim_g": {**_ADAM, "learning_rate": 1e-4},
    "optim_d": {**_ADAM, "learning_rate": 1e-4},
  },
}

OBJECTIVES = tuple(DEFAULT_SETTINGS)


# ----------------------------------------------------------------------------- networks


def num_resolution_steps(image_size: int) -> tuple[int, int]:
  """(steps, base) with image_size == base * 2**steps, base <= 7 (as gan_jax.models.dcgan)."""
  size, steps = image_size, 0
  while size > 7:
    if size % 2:
      raise ValueError(f"image size {image_size} cannot be halved down to at most 7")
    size, steps = size // 2, steps + 1
  if steps < 1:
    raise ValueError(f"image size {image_size} is too small")
  return steps, size


class Generator(nn.Module):
  """DCGAN G: z (B, Z) -> images (B, channels, H, W) in [-1, 1]."""

  def __init__(self, image_size: int = 32, channels: int = 3, width: int = 64, z_dim: int = 100):
    super().__init__()
    steps, self.base = num_resolution_steps(image_size)
    self.features = width * 2 ** (steps - 1)
    # No bias before BatchNorm: the BN shift makes it redundant (as in gan_jax).
    self.project = nn.Linear(z_dim, self.base * self.base * self.features, bias=False)
    self.project_norm = nn.BatchNorm2d(self.features, momentum=0.1, eps=1e-5)
    layers = []
    features = self.features
    for _ in range(steps - 1):
      layers += [
        nn.ConvTranspose2d(features, features // 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(features // 2, momentum=0.1, eps=1e-5),
        nn.ReLU(inplace=True),
      ]
      features //= 2
    layers += [nn.ConvTranspose2d(features, channels, 4, 2, 1, bias=True), nn.Tanh()]
    self.body = nn.Sequential(*layers)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    h = self.project(z).view(z.shape[0], self.features, self.base, self.base)
    h = F.relu(self.project_norm(h))
    return self.body(h)


class Discriminator(nn.Module):
  """DCGAN D (norm="batch", no BN on the input layer) or WGAN-GP critic (norm="none")."""

  def __init__(self, image_size: int = 32, channels: int = 3, width: int = 64, norm: str = "batch"):
    super().__init__()
    if norm not in ("batch", "none"):
      raise ValueError(f"norm must be batch or none, got {norm!r}")
    steps, base = num_resolution_steps(image_size)
    layers = []
    in_features, features = channels, width
    for i in range(steps):
      use_norm = i > 0 and norm == "batch"
      layers.append(nn.Conv2d(in_features, features, 4, 2, 1, bias=not use_norm))
      if use_norm:
        layers.append(nn.BatchNorm2d(features, momentum=0.1, eps=1e-5))
      layers.append(nn.LeakyReLU(0.2, inplace=True))
      in_features, features = features, features * 2
    self.body = nn.Sequential(*layers)
    self.score = nn.Linear(in_features * base * base, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.score(torch.flatten(self.body(x), 1))[:, 0]


def initialize(module: nn.Module, scheme: str) -> None:
  """N(0, 0.02) weights and N(1, 0.02) BN scales ("normal"), or Xavier-uniform ("xavier")."""
  for m in module.modules():
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
      if scheme == "normal":
        nn.init.normal_(m.weight, 0.0, 0.02)
      else:
        nn.init.xavier_uniform_(m.weight)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
      if scheme == "normal":
        nn.init.normal_(m.weight, 1.0, 0.02)
      else:
        nn.init.ones_(m.weight)
      nn.init.zeros_(m.bias)


# BEGAN (gan_jax.models.began). Flax's "SAME" padding of a stride-2 3x3 convolution on an even
# size pads one row and column after the image; padding=1 pads one on each side: the same output
# shape and work, the taps shifted by one pixel.


def began_scales(image_size: int) -> int:
  """Resolutions k + 1 with image_size == 8·2^k (as gan_jax.models.began.num_scales)."""
  size, scales = image_size, 1
  while size > 8 and size % 2 == 0:
    size, scales = size // 2, scales + 1
  if size != 8:
    raise ValueError(f"BEGAN needs an image size 8·2^k, got {image_size}")
  return scales


def _began_layer(in_features: int, features: int, stride: int = 1) -> nn.Sequential:
  return nn.Sequential(nn.Conv2d(in_features, features, 3, stride, 1), nn.ELU())


class BeganDecoder(nn.Module):
  """BEGAN's decoder and G: h (B, N) -> images (B, channels, H, W); n filters at every scale."""

  def __init__(self, image_size: int, channels: int, width: int, in_dim: int):
    super().__init__()
    self.width = width
    self.project = nn.Linear(in_dim, 8 * 8 * width)
    self.scales = nn.ModuleList(
      nn.Sequential(_began_layer(width, width), _began_layer(width, width))
      for _ in range(began_scales(image_size))
    )
    self.to_image = nn.Conv2d(width, channels, 3, 1, 1)

  def forward(self, h: torch.Tensor) -> torch.Tensor:
    x = self.project(h).view(h.shape[0], self.width, 8, 8)
    for i, scale in enumerate(self.scales):
      if i:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
      x = scale(x)
    return self.to_image(x)


class BeganAutoEncoder(nn.Module):
  """BEGAN's D: the encoder ((i + 1)·n filters at scale i, stride-2 down-sampling), the
  decoder, and the per-sample loss L(v) = mean |v - D(v)|^η (B,)."""

  def __init__(self, image_size: int, channels: int, width: int, hidden_dim: int, eta: int):
    super().__init__()
    self.eta = eta
    scales = began_scales(image_size)
    layers = [_began_layer(channels, width)]
    for i in range(scales):
      features = (i + 1) * width
      layers += [_began_layer(layers[-1][0].out_channels, features)]
      layers += [_began_layer(features, features)]
      if i < scales - 1:
        layers += [_began_layer(features, features + width, stride=2)]
    self.encoder = nn.Sequential(*layers)
    self.embed = nn.Linear(8 * 8 * scales * width, hidden_dim)
    self.decoder = BeganDecoder(image_size, channels, width, hidden_dim)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = self.embed(torch.flatten(self.encoder(x), 1))
    error = (x - self.decoder(h)).abs()
    if self.eta != 1:
      error = error**self.eta
    return error.flatten(1).mean(1)


# ----------------------------------------------------------------------------- iteration


def make_optimizer(params, cfg: dict[str, Any], device: torch.device):
  """Adam or RMSprop with the config's hyperparameters, fused / foreach where available."""
  kwargs = {}
  if device.type == "cuda":
    # A tuned peer uses the single-kernel optimisers on GPU; fall back where not supported.
    kwargs = {"fused": True}
  name = cfg["name"]
  for extra in (kwargs, {"foreach": True}, {}):
    try:
      if name == "adam":
        return torch.optim.Adam(
          params, lr=cfg["learning_rate"], betas=(cfg["b1"], cfg["b2"]), eps=cfg["eps"], **extra
        )
      if name == "rmsprop":
        return torch.optim.RMSprop(
          params, lr=cfg["learning_rate"], alpha=cfg["decay"], eps=cfg["eps"], **extra
        )
    except (RuntimeError, TypeError, ValueError):
      continue
    raise ValueError(f"unsupported optimiser {name!r}")
  raise RuntimeError(f"could not build optimiser {name!r}")


def discriminator_loss(objective: str, d_real, d_fake, real_label: float):
  """L_D of each objective, as in gan_jax.losses.adversarial."""
  if objective in ("minimax", "non_saturating"):
    real = real_label * F.softplus(-d_real) + (1.0 - real_label) * F.softplus(d_real)
    return real.mean() + F.softplus(d_fake).mean()
  if objective == "lsgan":
    return ((d_real - 1.0) ** 2).mean() + (d_fake**2).mean()
  if objective in ("wgan", "wgan_gp"):
    return d_fake.mean() - d_real.mean()
  raise ValueError(f"unknown objective {objective!r}")


def generator_loss(objective: str, d_fake):
  """L_G of each objective, as in gan_jax.losses.adversarial."""
  if objective == "minimax":
    return -F.softplus(d_fake).mean()
  if objective == "non_saturating":
    return F.softplus(-d_fake).mean()
  if objective == "lsgan":
    return ((d_fake - 1.0) ** 2).mean()
  if objective in ("wgan", "wgan_gp"):
    return -d_fake.mean()
  raise ValueError(f"unknown objective {objective!r}")


def gradient_penalty(critic, x_real, x_fake):
  """E (‖∇ d(x̂)‖ - 1)², x̂ = εx + (1-ε)G(z): autograd double backward, as in WGAN-GP."""
  eps = torch.rand(x_real.shape[0], 1, 1, 1, device=x_real.device, dtype=x_real.dtype)
  x_hat = (eps * x_real + (1.0 - eps) * x_fake).requires_grad_(True)
  (grads,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
  norms = torch.sqrt(grads.flatten(1).pow(2).sum(1) + 1e-12)
  return ((norms - 1.0) ** 2).mean()


class Peer:
  """G, D, their optimisers and the training iteration of one objective."""

  def __init__(
    self,
    objective: str,
    settings: dict[str, Any],
    *,
    batch_size: int,
    width: int,
    image_size: int,
    channels: int,
    device: torch.device,
    channels_last: bool,
    compile_mode: str | None,
    seed: int = 0,
  ):
    torch.manual_seed(seed)
    self.objective = objective
    self.settings = settings
    self.batch_size = batch_size
    self.device = device
    self.channels_last = channels_last
    self.z_dim = settings["z_dim"]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.generator, self.discriminator = self.networks(settings, image_size, channels, width)
    for net in (self.generator, self.discriminator):
      initialize(net, settings["init"])
      net.to(device=device, memory_format=memory_format).train()
    self.opt_g = make_optimizer(self.generator.parameters(), settings["optim_g"], device)
    self.opt_d = make_optimizer(self.discriminator.parameters(), settings["optim_d"], device)
    self.d_params = list(self.discriminator.parameters())
    self.bfloat16 = _bfloat16(settings)
    # The modules the iteration calls: compiled wrappers share the parameters.
    self.g, self.d = self.generator, self.discriminator
    if compile_mode:
      self.g = torch.compile(self.generator, mode=compile_mode)
      self.d = torch.compile(self.discriminator, mode=compile_mode)

  def networks(
    self, settings: dict[str, Any], image_size: int, channels: int, width: int
  ) -> tuple[nn.Module, nn.Module]:
    """(G, D) of the settings, before initialisation."""
    return (
      Generator(image_size, channels, width, settings["z_dim"]),
      Discriminator(image_size, channels, width, settings["disc_norm"]),
    )

  def real_images(self, images_u8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [-1, 1], in the networks' memory format.

    The conversion is part of the timed iteration, as in gan_jax (`images_to_float`).
    """
    x = images_u8.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    # The NHWC batch permuted to NCHW already has channels-last strides.
    return x if self.channels_last else x.contiguous()

  def noise(self) -> torch.Tensor:
    return torch.randn(self.batch_size, self.z_dim, device=self.device)

  def autocast(self):
    """bfloat16 forward passes when the settings ask for them (torch.autocast), else none."""
    return autocast(self.device, self.bfloat16)

  def iteration(self, batches_u8: torch.Tensor) -> None:
    """One training iteration on `batches_u8` (n_critic, B, H, W, C) uint8 on the device."""
    s = self.settings
    for p in self.d_params:
      p.requires_grad_(True)
    for r in range(s["n_critic"]):
      x_real = self.real_images(batches_u8[r])
      # G runs in training mode (its BN statistics move) but is not differentiated here.
      with torch.no_grad(), self.autocast():
        x_fake = self.g(self.noise()).float()
      self.opt_d.zero_grad(set_to_none=True)
      with self.autocast():
        d_real = self.d(x_real).float()
        d_fake = self.d(x_fake).float()
        loss = discriminator_loss(self.objective, d_real, d_fake, s["real_label"])
        if s["gp_weight"]:
          loss = loss + s["gp_weight"] * gradient_penalty(self.d, x_real, x_fake)
      loss.backward()
      self.opt_d.step()
      if s["clip"]:
        with torch.no_grad():
          torch._foreach_clamp_min_(self.d_params, -s["clip"])  # pylint: disable=protected-access
          torch._foreach_clamp_max_(self.d_params, s["clip"])  # pylint: disable=protected-access
    # G's update differentiates through D to its input only, as jax.vjp w.r.t. G's params does.
    for p in self.d_params:
      p.requires_grad_(False)
    self.opt_g.zero_grad(set_to_none=True)
    with self.autocast():
      loss = generator_loss(self.objective, self.d(self.g(self.noise()).float()).float())
    loss.backward()
    self.opt_g.step()


class BeganPeer(Peer):
  """BEGAN's G, auto-encoder D, their optimisers, k_t and the iteration of configs/began.py.

  One iteration: D's gradient of L(x) - k_t·L(G(z_D)) and G's gradient of L(G(z_G)), both at
  the iteration's starting parameters, then both Adam steps and
  k_{t+1} = clip(k_t + λ_k (γ·L(x) - L(G(z_G))), 0, 1) with M_global, on the device (no host
  synchronisation). The learning-rate controller's bookkeeping is left out: it changes nothing
  within a benchmark's iterations.
  """

  def __init__(self, objective: str, settings: dict[str, Any], **kwargs):
    super().__init__(objective, settings, **kwargs)
    self.k = torch.tensor(settings["k_init"], device=self.device)
    self.m_global = torch.zeros((), device=self.device)

  def networks(
    self, settings: dict[str, Any], image_size: int, channels: int, width: int
  ) -> tuple[nn.Module, nn.Module]:
    """BEGAN's decoder G and auto-encoder D."""
    return (
      BeganDecoder(image_size, channels, width, settings["z_dim"]),
      BeganAutoEncoder(image_size, channels, width, settings["hidden_dim"], settings["eta"]),
    )

  def noise(self) -> torch.Tensor:
    return torch.rand(self.batch_size, self.z_dim, device=self.device).mul_(2.0).sub_(1.0)

  def iteration(self, batches_u8: torch.Tensor) -> None:
    """One training iteration on `batches_u8` (1, B, H, W, C) uint8 on the device."""
    s = self.settings
    x_real = self.real_images(batches_u8[0])
    with torch.no_grad(), self.autocast():
      x_fake = self.g(self.noise()).float()
    for p in self.d_params:
      p.requires_grad_(True)
    self.opt_d.zero_grad(set_to_none=True)
    with self.autocast():
      real = self.d(x_real).float().mean()
      loss = real - self.k * self.d(x_fake).float().mean()
    loss.backward()
    # G's gradient at D's parameters from the start of the iteration: D steps only after it.
    for p in self.d_params:
      p.requires_grad_(False)
    self.opt_g.zero_grad(set_to_none=True)
    with self.autocast():
      fake = self.d(self.g(self.noise()).float()).float().mean()
    fake.backward()
    self.opt_d.step()
    self.opt_g.step()
    with torch.no_grad():
      balance = s["gamma"] * real - fake
      self.k = (self.k + s["lambda_k"] * balance).clamp_(0.0, 1.0)
      self.m_global = real + balance.abs()


def _bfloat16(settings: dict[str, Any]) -> bool:
  dtype = settings.get("compute_dtype", "float32")
  if dtype not in ("float32", "bfloat16"):
    raise ValueError(f"compute_dtype must be float32 or bfloat16, got {dtype!r}")
  return dtype == "bfloat16"


def autocast(device: torch.device, enabled: bool):
  """torch.autocast to bfloat16 on `device` when `enabled` (gan_jax's train.compute_dtype =
  bfloat16: bfloat16 activations, float32 parameters; the losses are taken in float32)."""
  return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def make_peer(objective: str, settings: dict[str, Any], **kwargs) -> Peer:
  """The peer of `objective` (BeganPeer when settings name the BEGAN model)."""
  cls = BeganPeer if settings.get("model") == "began" else Peer
  return cls(objective, settings, **kwargs)


# ----------------------------------------------------------------------------- timing


def configure(device: torch.device, threads: int) -> dict[str, Any]:
  """Backend settings of a tuned peer; returns them for the report."""
  if device.type == "cuda":
    torch.backends.cudnn.benchmark = True
    # TF32 for float32 convolutions and matmuls, as XLA uses on Ampere/Hopper by default.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
  else:
    torch.set_num_threads(threads)
  return {
    "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if device.type == "cuda" else None,
    "tf32": device.type == "cuda",
    "num_threads": torch.get_num_threads(),
  }


def synchronize(device: torch.device) -> None:
  if device.type == "cuda":
    torch.cuda.synchronize(device)


class PeerTimer:
  """One peer (objective, batch size, mode) ready to be timed window by window.

  `start` runs the first iteration (torch.compile compiles there) and the warm-up; `window(n)`
  times n more. A caller that alternates windows with another implementation (bench.py) calls
  `window` in turns; `time_peer` calls it in a row.
  """

  def __init__(self, peer: Peer, batches_u8: torch.Tensor):
    self.peer, self.batches = peer, batches_u8

  def start(self, warmup: int) -> float:
    """First iteration and `warmup - 1` more; returns the first one's seconds."""
    start = time.perf_counter()
    self.peer.iteration(self.batches)
    synchronize(self.peer.device)
    first_s = time.perf_counter() - start
    for _ in range(max(warmup - 1, 0)):
      self.peer.iteration(self.batches)
    synchronize(self.peer.device)
    return first_s

  def window(self, iters: int) -> tuple[float, float]:
    """Seconds of wall clock and of process CPU time for `iters` iterations."""
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(iters):
      self.peer.iteration(self.batches)
    synchronize(self.peer.device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def summarise(windows: list[tuple[int, float, float]]) -> dict[str, Any]:
  """ms/iter over all windows, their median, and CPU ms/iter from (iters, s, cpu_s) windows."""
  iters = sum(n for n, _, _ in windows)
  window_ms = [1e3 * sec / n for n, sec, _ in windows]
  return {
    "ms_per_iter": 1e3 * sum(sec for _, sec, _ in windows) / iters,
    "ms_per_iter_median": statistics.median(window_ms),
    "window_ms": window_ms,
    "cpu_ms_per_iter": 1e3 * sum(cpu for _, _, cpu in windows) / iters,
    "iters": iters,
  }


def time_peer(
  peer: Peer, batches_u8: torch.Tensor, *, warmup: int, iters: int, windows: int
) -> dict[str, Any]:
  """Times `peer.iteration`: the first call, warm-up, then `windows` timed windows in a row."""
  timer = PeerTimer(peer, batches_u8)
  first_s = timer.start(warmup)
  timed = [(n, *timer.window(n)) for n in split_iterations(iters, windows)]
  return {"first_iteration_s": first_s, **summarise(timed)}


def split_iterations(iters: int, windows: int) -> list[int]:
  """`iters` timed iterations as `windows` near-equal windows (at least one iteration each)."""
  windows = max(1, min(windows, iters))
  base, extra = divmod(iters, windows)
  return [base + (i < extra) for i in range(windows)]


def batches(
  n_critic: int, batch_size: int, image_size: int, channels: int, device, seed: int
) -> torch.Tensor:
  """Random uint8 real batches (n_critic, B, H, W, C) on the device, as bench.py's."""
  gen = torch.Generator().manual_seed(seed)
  shape = (n_critic, batch_size, image_size, image_size, channels)
  return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen).to(device)


def run(
  objectives,
  batch_sizes,
  *,
  modes=("eager",),
  width=64,
  image_size=32,
  channels=3,
  warmup=5,
  iters=50,
  windows=5,
  settings=None,
  device=None,
  threads=None,
  channels_last=None,
  compile_mode="default",
  seed=0,
  log=None,
) -> dict[str, Any]:
  """Times the peer for every (objective, batch size, mode); returns a JSON-able report.

  Args:
    objectives: objective names (see `OBJECTIVES`).
    batch_sizes: batch sizes B.
    modes: "eager" and/or "compile" (torch.compile of G and D).
    width, image_size, channels: network width C and image shape.
    warmup, iters, windows: iterations before timing, timed iterations, timing windows.
    settings: objective -> settings dict (as DEFAULT_SETTINGS); defaults to DEFAULT_SETTINGS.
    device: torch device string; default CUDA when available, else CPU.
    threads: CPU threads (default: all cores).
    channels_last: memory format; default on for CUDA, off on CPU.
    compile_mode: torch.compile mode.
    seed: initialisation seed.
    log: callable(str) for progress lines, or None.
  """
  settings = {**DEFAULT_SETTINGS, **(settings or {})}
  device, channels_last, backend = _backend(device, threads, channels_last)
  rows = []
  for objective in objectives:
    s = settings[objective]
    for batch_size in batch_sizes:
      images = batches(s["n_critic"], batch_size, image_size, channels, device, seed)
      shape = _peer_shape(batch_size, width, image_size, channels, device, channels_last, seed)
      for mode in modes:
        row = {
          "objective": objective,
          "batch_size": batch_size,
          "mode": mode,
          "compute_dtype": s.get("compute_dtype", "float32"),
          "n_critic": s["n_critic"],
        }
        try:
          peer = make_peer(
            objective, s, compile_mode=compile_mode if mode == "compile" else None, **shape
          )
          row.update(time_peer(peer, images, warmup=warmup, iters=iters, windows=windows))
          row["images_per_s"] = s["n_critic"] * batch_size * 1e3 / row["ms_per_iter"]
          row["iters_per_s"] = 1e3 / row["ms_per_iter"]
        except Exception as e:  # pylint: disable=broad-except
          # torch.compile cannot differentiate twice through a compiled graph (WGAN-GP).
          row["error"] = _error(e)
        finally:
          peer = None
          if device.type == "cuda":
            torch.cuda.empty_cache()
        rows.append(row)
        if log:
          log(json.dumps(row))
  return {**describe(device, channels_last, compile_mode, backend), "rows": rows}


def describe(device: torch.device, channels_last: bool, compile_mode: str, backend: dict) -> dict:
  """The peer's part of a report: versions, device and backend settings."""
  return {
    "framework": "torch",
    "torch_version": torch.__version__,
    "python": platform.python_version(),
    "device": (
      torch.cuda.get_device_name(device)
      if device.type == "cuda"
      else f"cpu ({platform.processor() or platform.machine()})"
    ),
    "device_type": device.type,
    "cpu_count": os.cpu_count(),
    "channels_last": channels_last,
    "compile_mode": compile_mode,
    **backend,
  }


def _backend(
  device: str | None, threads: int | None, channels_last: bool | None
) -> tuple[torch.device, bool, dict[str, Any]]:
  """The device (default: CUDA when available), the memory format (default: channels-last on
  CUDA only) and the configured backend settings, as `run` and `prepare` document them."""
  device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
  if channels_last is None:
    channels_last = device.type == "cuda"
  return device, channels_last, configure(device, threads or os.cpu_count() or 1)


def _peer_shape(batch_size, width, image_size, channels, device, channels_last, seed) -> dict:
  """`Peer`'s keyword arguments other than the compile mode, as `run` and `prepare` pass them."""
  return dict(
    batch_size=batch_size,
    width=width,
    image_size=image_size,
    channels=channels,
    device=device,
    channels_last=channels_last,
    seed=seed,
  )


def _error(e: Exception) -> str:
  lines = traceback.format_exception_only(type(e), e)
  return " ".join(line.strip() for line in lines)[:500]


def prepare(
  objective: str,
  batch_size: int,
  *,
  modes=("eager",),
  width=64,
  image_size=32,
  channels=3,
  warmup=5,
  settings=None,
  device=None,
  threads=None,
  channels_last=None,
  compile_mode="default",
  seed=0,
) -> tuple[dict[str, Any], dict[str, PeerTimer], dict[str, dict[str, Any]]]:
  """Builds and warms up one peer per mode, for timing windows alternated with gan_jax's.

  Returns the report's peer description, {mode: timer} and {mode: {"first_iteration_s"} or
  {"error"}} (torch.compile fails on WGAN-GP's double backward: that mode gets no timer).
  """
  s = {**DEFAULT_SETTINGS, **(settings or {})}[objective]
  device, channels_last, backend = _backend(device, threads, channels_last)
  images = batches(s["n_critic"], batch_size, image_size, channels, device, seed)
  shape = _peer_shape(batch_size, width, image_size, channels, device, channels_last, seed)
  timers, starts = {}, {}
  for mode in modes:
    try:
      peer = make_peer(
        objective, s, compile_mode=compile_mode if mode == "compile" else None, **shape
      )
      timer = PeerTimer(peer, images)
      starts[mode] = {"first_iteration_s": timer.start(warmup)}
      timers[mode] = timer
    except Exception as e:  # pylint: disable=broad-except
      starts[mode] = {"error": _error(e)}
  return describe(device, channels_last, compile_mode, backend), timers, starts


def serve(args: argparse.Namespace, settings: dict | None) -> None:
  """The peer as a subprocess of bench.py: JSON lines on stdin and stdout.

  First line out: {"peer": description, "starts": {mode: ...}} once the peers are warm. Then
  each line in, {"mode": m, "iters": n}, is answered by {"s": wall seconds, "cpu_s": process
  CPU seconds} of n iterations; the process ends at the end of its input.
  """
  (objective,) = [o for o in args.objectives.split(",") if o]
  (batch_size,) = [int(b) for b in args.batch_sizes.split(",") if b]
  meta, timers, starts = prepare(
    objective,
    batch_size,
    modes=[m for m in args.modes.split(",") if m],
    width=args.width,
    image_size=args.image_size,
    channels=args.channels,
    warmup=args.warmup,
    settings=settings,
    device=args.device,
    threads=args.threads,
    channels_last={"auto": None, "yes": True, "no": False}[args.channels_last],
    compile_mode=args.compile_mode,
  )
  print(json.dumps({"peer": meta, "starts": starts}), flush=True)
  for line in sys.stdin:
    request = json.loads(line)
    sec, cpu = timers[request["mode"]].window(int(request["iters"]))
    print(json.dumps({"s": sec, "cpu_s": cpu}), flush=True)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--objectives",
    default="non_saturating,wgan_gp",
    help=f"Comma-separated, from {', '.join(OBJECTIVES)}.",
  )
  parser.add_argument("--batch_sizes", default="64,256,1024", help="Comma-separated B.")
  parser.add_argument(
    "--modes", default="eager,compile", help="eager and/or compile (torch.compile of G and D)."
  )
  parser.add_argument("--width", type=int, default=64, help="Network width C.")
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--channels", type=int, default=3)
  parser.add_argument(
    "--warmup", type=int, default=5, help="Untimed iterations, the first (which compiles) included."
  )
  parser.add_argument("--iters", type=int, default=50, help="Timed iterations.")
  parser.add_argument("--windows", type=int, default=5, help="Timing windows.")
  parser.add_argument("--device", default=None, help="Default: cuda if available, else cpu.")
  parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores).")
  parser.add_argument(
    "--channels_last",
    choices=("auto", "yes", "no"),
    default="auto",
    help="auto: channels-last on CUDA only.",
  )
  parser.add_argument("--compile_mode", default="default", help="torch.compile mode.")
  parser.add_argument(
    "--compute_dtype",
    choices=("float32", "bfloat16"),
    default=None,
    help="Forward passes in float32 or under bfloat16 autocast (default: the settings', "
    "float32 unless --settings_json says otherwise).",
  )
  parser.add_argument(
    "--settings_json",
    default=None,
    help="JSON object: objective -> settings (as DEFAULT_SETTINGS).",
  )
  parser.add_argument("--out", default=None, help="Write the JSON here instead of stdout.")
  parser.add_argument(
    "--serve",
    action="store_true",
    help="Time windows on request (bench.py's subprocess peer): one objective and batch size.",
  )
  args = parser.parse_args(argv)
  settings = json.loads(args.settings_json) if args.settings_json else None
  if args.compute_dtype:
    settings = {
      o: {**DEFAULT_SETTINGS[o], **(settings or {}).get(o, {}), "compute_dtype": args.compute_dtype}
      for o in OBJECTIVES
    }
  if args.serve:
    serve(args, settings)
    return
  report = run(
    [o for o in args.objectives.split(",") if o],
    [int(b) for b in args.batch_sizes.split(",") if b],
    modes=[m for m in args.modes.split(",") if m],
    width=args.width,
    image_size=args.image_size,
    channels=args.channels,
    warmup=args.warmup,
    iters=args.iters,
    windows=args.windows,
    settings=settings,
    device=args.device,
    threads=args.threads,
    channels_last={"auto": None, "yes": True, "no": False}[args.channels_last],
    compile_mode=args.compile_mode,
    log=lambda line: print(line, file=sys.stderr, flush=True),
  )
  text = json.dumps(report, indent=2)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  else:
    print(text)


if __name__ == "__main__":
  main()
