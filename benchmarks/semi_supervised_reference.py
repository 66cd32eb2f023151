r"""The semi-supervised MNIST GAN (configs/semi_supervised.py:mnist) against a PyTorch
re-implementation of the released code's training (openai/improved-gan, mnist_svhn_cifar10/
train_mnist_feature_matching.py and nn.py), step by step. Not part of the test suite.

Two stages, in two interpreters (the library's, and one with torch and numpy, e.g.
`python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy`):

  python benchmarks/semi_supervised_reference.py library --noise --out=/tmp/semi_ref.npz
  /tmp/torchenv/bin/python benchmarks/semi_supervised_reference.py reference --sync \
      --ref=/tmp/semi_ref.npz

The library stage builds the :mnist spec and initial TrainState (data-dependent init on 500
synthetic images), runs --iterations (5) iterations on synthetic uint8 batches with a fixed
noise z per phase (injected through the game's context), and saves the initial parameters,
Adam's state, the inputs and, per iteration, D's loss, gradients and updated parameters, then
G's. Without --noise it sets the Gaussian noise to σ = 0 and also checks that the compiled
`train_iteration` equals the two phase updates; with --noise the config's σ stay and every D
pass's draws (and the init pass's) are saved, for the reference to add at the same places.
--checkpoint=DIR/<step> starts from a run's checkpoint (copy the step folder elsewhere
first) on the run's MNIST batches instead.

The reference stage (float64; --float32 for float32) redoes the data-dependent init from the
library's initial directions, then the iterations with the released algorithm
(train_batch_disc, then train_batch_gen: loss_lab + loss_unl with its ½ weights, the mean
squared feature-matching loss on layers[-3]; Adam with β1 = 0.5, β2 = 0.999, 1e-8 inside the
square root and bias correction), and prints the largest difference of every quantity,
relative to its largest entry, in order, flagging those above 2e-3. --sync starts each phase
from the library's parameters, so that float32 rounding does not accumulate (a trained GAN's
trajectories drift apart from rounding alone). The first flagged quantity is where the two
differ.

Outcome (2 CPU cores, CPU jax): from the initial state, with σ = 0 and with the library's
noise, 5 iterations agree to ~1e-5 (updates) and ~1e-7 (losses), the init to ~2e-7. From the
step-6000 checkpoint of the failing seed-0 run, everything agrees but D's first-layer
gradients (4e-3 in float64); a float32 reference agrees with the library there to 1e-6, so
that is float32 rounding, shared by the released code's float32 training.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

B, Z = 100, 100


def _flat(tree, prefix=""):
  out = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}/"))
    else:
      out[f"{prefix}{k}"] = np.asarray(v)
  return out


class _recording:
  """Within it, every Gaussian noise draw of D is appended to `draws` (as numpy)."""

  def __init__(self, draws):
    self.draws = draws

  def __enter__(self):
    from gan_jax.models import semi_supervised as models

    self.original = original = models.gaussian_noise

    def recording(module, x, sigma, train):
      y = original(module, x, sigma, train)
      self.draws.append(np.asarray(y - x))
      return y

    models.gaussian_noise = recording

  def __exit__(self, *exc):
    from gan_jax.models import semi_supervised as models

    models.gaussian_noise = self.original


def _noise_draws(spec, state, key):
  """The Gaussian noise (input, then after each hidden layer) that D's training pass with
  `key` adds: the draws depend on the key and shapes only, so they are read off a pass on
  zeros with the noise function wrapped."""
  import jax.numpy as jnp

  draws = []
  with _recording(draws):
    spec.game.run(
      "discriminator",
      state.params,
      dict(state.model_state),
      jnp.zeros((B, 28, 28, 1)),
      train=True,
      key=key,
    )
  return draws


def library(args) -> None:
  import dataclasses

  import jax
  import jax.numpy as jnp

  from gan_jax import configs, train
  from gan_jax import spec as spec_lib
  from gan_jax.core import parallel
  from gan_jax.core.random import named_key
  from gan_jax.core.step import _phase_gradients, _phase_update, train_iteration
  from gan_jax.games.semi_supervised import SemiSupervisedGame

  jax.config.update("jax_default_matmul_precision", "highest")

  class FixedNoiseGame(SemiSupervisedGame):
    """z of each phase from the batch ("z/<network>") instead of a draw."""

    def context(self, *, networks, batch, **kwargs):
      ctx = super().context(networks=networks, batch=batch, **kwargs)
      ctx._providers["z"] = lambda: jnp.asarray(batch[f"z/{networks[0]}"])
      return ctx

  config = configs.get("semi_supervised", "mnist")
  if not args.noise:
    config.model.input_noise = 0.0
    config.model.hidden_noise = 0.0
  spec = spec_lib.build_spec(config, mesh=parallel.make_mesh(1))
  fields = {f.name: getattr(spec.game, f.name) for f in dataclasses.fields(spec.game)}
  spec = dataclasses.replace(spec, game=FixedNoiseGame(**fields))
  print("phases:", [(p.name, p.networks, [t.name for t in p.terms]) for p in spec.phases])
  print("controllers:", spec.controllers, "ema:", spec.ema_decay, spec.ema_networks)

  rng = np.random.default_rng(args.seed)

  def images(n):
    # Sparse, MNIST-like: ~20 % of the pixels lit.
    x = rng.integers(0, 256, (n, 28, 28, 1)).astype(np.float64)
    x *= rng.uniform(size=x.shape) < 0.2
    return x.astype(np.uint8)

  init_images = images(500)
  init_batch = {"image": init_images.astype(np.float32) / 127.5 - 1.0}
  real = None
  saved = {}
  if args.checkpoint:
    # A trained state (a run's checkpoint folder "<workdir>/checkpoints/<step>", copied
    # elsewhere first: restoring goes through the checkpoint manager), on the run's MNIST
    # batches of the following steps.
    from gan_jax import checkpoint as checkpoint_lib
    from gan_jax import data as data_lib

    folder, step = args.checkpoint.rstrip("/").rsplit("/", 1)
    checkpoints = checkpoint_lib.Checkpointer(folder, keep=100, config=config.to_dict())
    state = checkpoints.restore(train.abstract_state(spec, 0, init_batch), int(step))
    source = data_lib.load_source(config.data.to_dict(), config.seed)
    real = data_lib.make_batches(config.data.to_dict(), source, B, config.seed, num_classes=10)
  else:
    state = train.init_state(spec, 0, init_batch)
    # The data-dependent init again, eagerly, recording its noise draws (create_train_state's
    # key), so that the reference can redo it.
    draws = []
    init_key = jax.random.split(jax.random.PRNGKey(0))[0]
    with _recording(draws):
      variables = spec.game.init_variables(init_key, init_batch)
    for i, eps in enumerate(draws):
      saved[f"init_noise/{i}"] = eps
    d_init = _flat(jax.device_get(variables["discriminator"]["params"]))
    for k, v in d_init.items():
      w = np.asarray(state.params["discriminator"][k.split("/")[0]][k.split("/")[1]])
      print(f"  eager init vs init_state {k}: max rel {np.abs(v - w).max() / np.abs(w).max():.1e}")
  saved.update({f"init/{k}": v for k, v in _flat(jax.device_get(state.params)).items()})
  saved["init_images"] = init_images
  for name in ("discriminator", "generator"):
    # Adam's moments and count (optax's ScaleByAdamState), for the reference's Adam.
    adam = next(
      s
      for s in jax.tree.leaves(state.opt_state[name], is_leaf=lambda x: hasattr(x, "nu"))
      if hasattr(s, "nu")
    )
    saved[f"adam/{name}/count"] = np.asarray(adam.count)
    saved.update({f"adam/mu/{name}/{k}": v for k, v in _flat(jax.device_get(adam.mu)).items()})
    saved.update({f"adam/nu/{name}/{k}": v for k, v in _flat(jax.device_get(adam.nu)).items()})
  d_phase, g_phase = spec.phases
  step_fn = jax.jit(lambda s, b: train_iteration(s, b, spec=spec))
  for it in range(args.iterations):
    batch = {
      "image": images(B),
      "image_g": images(B),
      "labelled_image": images(B),
      "labelled_label": rng.integers(0, 10, B).astype(np.int32),
      "z/discriminator": rng.uniform(size=(B, Z)).astype(np.float32),
      "z/generator": rng.uniform(size=(B, Z)).astype(np.float32),
    }
    if real is not None:
      batch.update({k: v[0] for k, v in real.iteration(int(state.step), 1).items()})
    for k, v in batch.items():
      saved[f"{it}/batch/{k}"] = v
    one = {k: jnp.asarray(v) for k, v in batch.items()}
    keys = {"d": jax.random.PRNGKey(2 * it), "g": jax.random.PRNGKey(2 * it + 1)}
    if args.noise:
      passes = {"d": ("labelled", "unlabelled", "fake"), "g": ("real", "fake")}
      for phase, names in passes.items():
        ctx_key = jax.random.split(keys[phase])[0]  # as `_phase_loss` splits its key
        for name in names:
          for i, eps in enumerate(_noise_draws(spec, state, named_key(ctx_key, f"noise/{name}"))):
            saved[f"{it}/noise/{phase}/{name}/{i}"] = eps
    grads, metrics, _, _ = _phase_gradients(spec, d_phase, state, state, one, keys["d"], {})
    mid, _, _ = _phase_update(spec, d_phase, state, state, one, keys["d"], {})
    saved[f"{it}/d/loss"] = np.asarray(metrics["d/loss"])
    saved.update({f"{it}/d/grad/{k}": v for k, v in _flat(jax.device_get(grads)).items()})
    saved.update({f"{it}/d/param/{k}": v for k, v in _flat(jax.device_get(mid.params)).items()})
    grads, metrics, _, _ = _phase_gradients(spec, g_phase, mid, state, one, keys["g"], {})
    saved[f"{it}/g/loss"] = np.asarray(metrics["g/loss"])
    saved.update({f"{it}/g/grad/{k}": v for k, v in _flat(jax.device_get(grads)).items()})
    new, _, _ = _phase_update(spec, g_phase, mid, state, one, keys["g"], {})
    if not args.noise:
      # The whole compiled iteration, as training runs it, is the two phase updates.
      stacked = {k: v[None] for k, v in one.items()}
      compiled, _ = step_fn(state, stacked)
      diff = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(compiled.params), jax.tree.leaves(new.params))
      )
      print(f"  train_iteration vs the phase updates: max |Δ| = {diff:.2e}")
    state = new
    saved.update({f"{it}/g/param/{k}": v for k, v in _flat(jax.device_get(state.params)).items()})
    print(
      f"iteration {it}: d/loss {float(saved[f'{it}/d/loss']):.6f} g/loss "
      f"{float(saved[f'{it}/g/loss']):.6f}"
    )
  np.savez(args.out, **saved)
  print("saved", args.out)


def reference(args) -> None:
  import torch

  dtype = np.float32 if args.float32 else np.float64
  torch.set_default_dtype(torch.float32 if args.float32 else torch.float64)
  ref = np.load(args.ref)
  iterations = 1 + max(int(k.split("/")[0]) for k in ref.files if k[0].isdigit())
  t = lambda a: torch.tensor(np.asarray(a, dtype))

  # The released parameters (their trainable ones, with the library's names).
  d_hidden = [f"discriminator/dense{i}" for i in range(5)]
  d_trainable = [f"{n}/{p}" for n in d_hidden for p in ("v", "b")]
  d_trainable += ["discriminator/logits/v", "discriminator/logits/g", "discriminator/logits/b"]
  g_trainable = [
    "generator/dense0/kernel",
    "generator/bn0/bias",
    "generator/dense1/kernel",
    "generator/bn1/bias",
    "generator/to_image/v",
    "generator/to_image/g",
    "generator/to_image/b",
  ]
  p = {k[len("init/") :]: t(ref[k]) for k in ref.files if k.startswith("init/")}
  for k in d_trainable + g_trainable:
    p[k].requires_grad_(True)

  def disc(x, noise, last_hidden=False):
    # nn.DenseLayer: W = θ · s / ‖θ‖ (no ε), relu; each GaussianNoiseLayer adds its draw
    # (noise[0] on the input, noise[i + 1] after hidden layer i; none with σ = 0).
    h = x + noise[0] if noise else x
    for i, n in enumerate(d_hidden):
      v = p[f"{n}/v"]
      h = torch.relu(h @ (v * (p[f"{n}/g"] / torch.sqrt((v**2).sum(0)))) + p[f"{n}/b"])
      if last_hidden and i == len(d_hidden) - 1:
        return h  # layers[-3]: the last DenseLayer's output, before its noise layer.
      if noise:
        h = h + noise[i + 1]
    v = p["discriminator/logits/v"]
    w = v * (p["discriminator/logits/g"] / torch.sqrt((v**2).sum(0)))
    return h @ w + p["discriminator/logits/b"]

  def gen(z):
    # nn.batch_norm(LL.DenseLayer(softplus), g=None): batch statistics, bias, softplus.
    h = z
    for i in range(2):
      h = h @ p[f"generator/dense{i}/kernel"]
      m = h.mean(0)
      c = h - m
      h = torch.nn.functional.softplus(
        c / torch.sqrt(1e-6 + (c**2).mean(0)) + p[f"generator/bn{i}/bias"]
      )
    v = p["generator/to_image/v"]
    w = v * (p["generator/to_image/g"] / torch.sqrt(1e-6 + (v**2).sum(0)))
    return torch.sigmoid(h @ w + p["generator/to_image/b"])

  def lse(x):
    m = x.max(1).values
    return m + torch.log(torch.exp(x - m[:, None]).sum(1))

  sp = torch.nn.functional.softplus

  class Adam:
    def __init__(self, names):
      self.names, self.t = names, 1.0
      self.m = {n: torch.zeros_like(p[n]) for n in names}
      self.v = {n: torch.zeros_like(p[n]) for n in names}

    def step(self, grads, lr=0.003, mom1=0.5, mom2=0.999):
      with torch.no_grad():
        for n in self.names:
          g = grads[n]
          self.m[n] = mom1 * self.m[n] + (1 - mom1) * g
          self.v[n] = mom2 * self.v[n] + (1 - mom2) * g**2
          m_hat = self.m[n] / (1 - mom1**self.t)
          v_hat = self.v[n] / (1 - mom2**self.t)
          p[n] -= lr * m_hat / torch.sqrt(v_hat + 1e-8)
      self.t += 1

  adam_d, adam_g = Adam(d_trainable), Adam(g_trainable)
  for adam, name in ((adam_d, "discriminator"), (adam_g, "generator")):
    adam.t = float(ref[f"adam/{name}/count"]) + 1
    adam.m = {n: t(ref[f"adam/mu/{n}"]) for n in adam.names}
    adam.v = {n: t(ref[f"adam/nu/{n}"]) for n in adam.names}
  worst = []

  def compare(name, ours, theirs, tol=2e-3):
    ours = ours.detach().numpy()
    ours = ours.astype(np.float64)
    theirs = np.asarray(theirs, np.float64)
    scale = max(np.abs(ours).max(), 1e-12)
    err = np.abs(ours - theirs).max() / scale
    flag = "  <-- DIFFERS" if err > tol else ""
    print(f"  {name:42s} max|Δ|/max|ref| = {err:.2e}{flag}")
    if flag:
      worst.append(name)

  def sync(prefix):
    # Each phase starts from the library's parameters, so differences do not propagate.
    with torch.no_grad():
      for n in d_trainable + g_trainable:
        p[n].copy_(t(ref[f"{prefix}/{n}"]))

  def compare_update(phase, names, before):
    for n in names:
      compare(
        f"{phase}/update/{n}", p[n] - t(before[n]), ref[f"{it}/{phase}/param/{n}"] - before[n]
      )

  if "init_noise/0" in ref.files:
    # nn.DenseLayer's init pass on the 500 images (weight_scale = 1 → 1 / stdv, b = −ma /
    # stdv), its noise layers on, from the library's initial directions θ = v.
    print("data-dependent init")
    with torch.no_grad():
      noise = [t(ref[f"init_noise/{i}"]) for i in range(6)]
      h = t(ref["init_images"]).reshape(500, -1) / 255.0 + noise[0]
      for i, n in enumerate(d_hidden + ["discriminator/logits"]):
        v = p[f"{n}/v"]
        a = h @ (v / torch.sqrt((v**2).sum(0)))
        ma = a.mean(0)
        stdv = torch.sqrt(((a - ma) ** 2).mean(0))
        compare(f"init/{n}/g", 1.0 / stdv, ref[f"init/{n}/g"])
        compare(f"init/{n}/b", -ma / stdv, ref[f"init/{n}/b"])
        if i < len(d_hidden):
          h = torch.relu((a - ma) / stdv) + noise[i + 1]

  for it in range(iterations):
    print(f"iteration {it}")
    if args.sync:
      sync(f"{it - 1}/g/param" if it else "init")
    before = {n: p[n].detach().clone().numpy() for n in d_trainable}
    b = {k.split("/", 2)[2]: ref[k] for k in ref.files if k.startswith(f"{it}/batch/")}
    x01 = lambda a: t(a).reshape(a.shape[0], -1) / 255.0
    x_lab, x_unl, x_unl2 = x01(b["labelled_image"]), x01(b["image"]), x01(b["image_g"])
    labels = torch.tensor(b["labelled_label"].astype(np.int64))

    def noise(phase, name, it=it):
      prefix = f"{it}/noise/{phase}/{name}/"
      return [t(ref[f"{prefix}{i}"]) for i in range(6)] if prefix + "0" in ref.files else None

    # train_batch_disc.
    out_lab, out_unl = disc(x_lab, noise("d", "labelled")), disc(x_unl, noise("d", "unlabelled"))
    out_fake = disc(gen(t(b["z/discriminator"])), noise("d", "fake"))
    loss_lab = -out_lab[torch.arange(B), labels].mean() + lse(out_lab).mean()
    l_unl = lse(out_unl)
    loss_unl = -0.5 * l_unl.mean() + 0.5 * sp(l_unl).mean() + 0.5 * sp(lse(out_fake)).mean()
    loss = loss_lab + loss_unl
    grads = dict(zip(d_trainable, torch.autograd.grad(loss, [p[n] for n in d_trainable])))
    compare("d/loss", loss, ref[f"{it}/d/loss"])
    for n in d_trainable:
      compare(f"d/grad/{n}", grads[n], ref[f"{it}/d/grad/{n}"])
    adam_d.step(grads)
    for n in d_trainable:
      compare(f"d/param/{n}", p[n], ref[f"{it}/d/param/{n}"])
    compare_update("d", d_trainable, before)
    if args.sync:
      sync(f"{it}/d/param")
    before = {n: p[n].detach().clone().numpy() for n in g_trainable}
    # train_batch_gen.
    mom_gen = disc(gen(t(b["z/generator"])), noise("g", "fake"), last_hidden=True).mean(0)
    mom_real = disc(x_unl2, noise("g", "real"), last_hidden=True).mean(0)
    loss_gen = ((mom_gen - mom_real) ** 2).mean()
    grads = dict(zip(g_trainable, torch.autograd.grad(loss_gen, [p[n] for n in g_trainable])))
    compare("g/loss", loss_gen, ref[f"{it}/g/loss"])
    for n in g_trainable:
      compare(f"g/grad/{n}", grads[n], ref[f"{it}/g/grad/{n}"])
    adam_g.step(grads)
    compare_update("g", g_trainable, before)
    for n in g_trainable + d_trainable:
      compare(f"g/param/{n}", p[n], ref[f"{it}/g/param/{n}"])
  print("first difference:", worst[0] if worst else "none")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("stage", choices=("library", "reference"))
  parser.add_argument("--out", default="/tmp/semi_ref.npz")
  parser.add_argument("--ref", default="/tmp/semi_ref.npz")
  parser.add_argument("--iterations", type=int, default=5)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--noise", action="store_true")
  parser.add_argument("--sync", action="store_true")
  parser.add_argument("--float32", action="store_true", help="the reference in float32")
  parser.add_argument("--checkpoint", default="", help="start from this checkpoint step folder")
  args = parser.parse_args(argv)
  library(args) if args.stage == "library" else reference(args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
