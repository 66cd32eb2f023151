"""The Flax FID Inception against reference features from the TorchScript original, its
preprocessing, the weight converters and the PyTorch-file reader (no PyTorch needed).

The comparison with the reference needs the converted weights in the cache
(`python -m gan_jax.metrics.inception --download`); it is skipped, saying so, without them.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax.metrics import features as features_lib
from gan_jax.metrics import inception, torchscript_reader

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _fixture():
  with np.load(os.path.join(FIXTURES, "inception_reference.npz")) as f:
    names = sorted(k.split("/", 1)[1] for k in f.files if k.startswith("image/"))
    return names, {n: f[f"image/{n}"] for n in names}, {n: f[f"pool3/{n}"] for n in names}


@pytest.fixture(scope="module")
def fid_params():
  try:
    return inception.load_params()
  except FileNotFoundError as e:
    pytest.skip(f"Inception weights not converted ({e})")


# ----------------------------------------------------------------------------- port vs reference


def test_pool3_matches_torchscript_reference(fid_params):
  names, images, reference = _fixture()
  assert len(names) >= 16
  assert len({im.shape for im in images.values()}) >= 10  # sizes and channel counts differ
  # Preprocess each image at its own size (cheap to compile), then run the network once on
  # the batch: the same computation as inception.apply, with one network compilation.
  batch = jnp.concatenate([jax.jit(inception.preprocess)(images[n][None]) for n in names])
  model = inception.model_for(fid_params)
  out = jax.jit(model.apply)({"params": fid_params}, batch)["pool3"]
  out = np.asarray(out)
  for i, n in enumerate(names):
    ref = reference[n]
    rel = np.abs(out[i] - ref).max() / np.abs(ref).max()
    assert rel < 1e-4, f"{n}: max relative error {rel:.2e}"
    assert np.linalg.norm(out[i] - ref) / np.linalg.norm(ref) < 1e-4, n
  # The features tell images apart (a broken network giving constant output would not).
  assert np.min(np.linalg.norm(out[:, None] - out[None], axis=-1) + np.eye(len(out)) * 1e9) > 1e-2


def test_feature_extractor_sharded_matches_reference(fid_params):
  # The batched extractor on 4 devices, with a partial last batch: images of one size.
  del fid_params
  names, images, reference = _fixture()
  picked = [n for n in names if images[n].shape[:2] == (32, 32)]
  assert len(picked) >= 3
  extractor = features_lib.EXTRACTORS.get("inception")({"batch_size": 4})
  assert extractor.mesh.size == 4
  stack = np.stack([np.repeat(images[n], 3 // images[n].shape[-1], -1) for n in picked])
  feats = extractor(np.concatenate([stack, stack[:2]]))["features"]
  assert feats.shape == (len(picked) + 2, 2048)
  for i, n in enumerate(picked + picked[:2]):
    np.testing.assert_allclose(
      feats[i], reference[n], rtol=0, atol=1e-4 * np.abs(reference[n]).max()
    )


# ----------------------------------------------------------------------------- preprocessing


def _nv_bilinear_reference(image: np.ndarray, out: int) -> np.ndarray:
  """StyleGAN3's nv_bilinear written out from its definition (affine_grid with the
  translation 1/in - 1/out, then grid_sample bilinear, border padding, align_corners=False)."""
  h, w = image.shape[:2]
  j = np.arange(out)

  def coords(n):
    x_out = (2 * j + 1) / out - 1  # affine_grid, align_corners=False
    x_in = x_out + 1 / n - 1 / out  # the translation in theta
    u = ((x_in + 1) * n - 1) / 2  # grid_sample unnormalisation
    return np.clip(u, 0, n - 1)  # border padding

  uy, ux = coords(h), coords(w)
  y0, x0 = np.floor(uy).astype(int), np.floor(ux).astype(int)
  y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
  fy, fx = (uy - y0)[:, None, None], (ux - x0)[None, :, None]
  im = image.astype(np.float64)
  top = im[y0][:, x0] * (1 - fx) + im[y0][:, x1] * fx
  bottom = im[y1][:, x0] * (1 - fx) + im[y1][:, x1] * fx
  return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize("shape", [(32, 32), (17, 23), (320, 240), (1, 1), (299, 299)])
def test_resize_matches_nv_bilinear(shape):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, shape + (3,)).astype(np.uint8)
  got = np.asarray(inception.preprocess(jnp.asarray(image[None])))[0]
  expected = _nv_bilinear_reference(image, 299) / 255 * 1.9921875 - 1
  np.testing.assert_allclose(got, expected, atol=2e-5)
  assert got.min() >= -1 and got.max() <= 0.9921875


def test_resize_matrix_rows_are_interpolation_weights():
  m = inception.resize_matrix(32)
  np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)
  assert np.all(m >= 0) and np.count_nonzero(m, axis=1).max() <= 2
  np.testing.assert_array_equal(inception.resize_matrix(299), np.eye(299, dtype=np.float32))


def test_preprocess_gray_equals_repeated_rgb_and_rejects_bad_shapes():
  rng = np.random.default_rng(1)
  gray = rng.integers(0, 256, (2, 28, 28, 1)).astype(np.uint8)
  np.testing.assert_array_equal(
    inception.preprocess(gray), inception.preprocess(np.repeat(gray, 3, -1))
  )
  with pytest.raises(ValueError, match="expected images"):
    inception.preprocess(jnp.zeros((28, 28, 3), jnp.uint8))


def test_quantize_rounds_like_the_reference():
  x = np.array([0.0, 0.5 / 255, 1.49 / 255, 1.0, 1.2, -0.1], np.float32)
  np.testing.assert_array_equal(inception.quantize(x), [0, 0, 1, 255, 255, 0])


def test_missing_weights_error_says_what_to_run(tmp_path, monkeypatch):
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path))
  with pytest.raises(FileNotFoundError, match="gan_jax.metrics.inception --download"):
    inception.load_params()
  with pytest.raises(FileNotFoundError, match="convert_pytorch_fid"):
    inception.load_params(full=True)


# ----------------------------------------------------------------------------- reader


@pytest.mark.parametrize("name", ["torch_state_zip.pt", "torch_state_legacy.pt"])
def test_reader_reads_torch_save_files(name):
  state = torchscript_reader.load(os.path.join(FIXTURES, name))
  with np.load(os.path.join(FIXTURES, "torch_expected.npz")) as f:
    expected = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("state/")}
  assert sorted(state) == sorted(expected)
  for k, v in expected.items():
    assert state[k].dtype == v.dtype, k
    np.testing.assert_array_equal(state[k], v, err_msg=k)


def test_reader_reads_torchscript_modules():
  module = torchscript_reader.load(os.path.join(FIXTURES, "torch_script.pt"))
  assert module.type_name.endswith("Block")
  assert module.padding == [0, 1] and module.stride == 2
  tensors = torchscript_reader.named_tensors(module)
  with np.load(os.path.join(FIXTURES, "torch_expected.npz")) as f:
    np.testing.assert_array_equal(tensors["conv.weight"], f["script/conv.weight"])
    np.testing.assert_array_equal(tensors["mean"], f["script/mean"])
  assert set(torchscript_reader.named_modules(module)) == {"", "conv"}


def test_reader_refuses_arbitrary_globals(tmp_path):
  path = tmp_path / "evil.pt"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps(os.system, protocol=2))
  with pytest.raises(pickle.UnpicklingError, match="does not support"):
    torchscript_reader.load(str(path))


# ----------------------------------------------------------------------------- pytorch-fid layout


def _write_torch_state_dict(path: str, tensors: dict[str, np.ndarray]) -> None:
  """Writes float32 tensors as a `torch.save` zip archive (the format PyTorch >= 1.6 writes;
  torch.load reads these files), with hand-written pickle opcodes so no torch is needed."""
  out = io.BytesIO()

  def string(s):
    b = s.encode()
    out.write(b"X" + struct.pack("<I", len(b)) + b)

  def integer(i):
    out.write(b"J" + struct.pack("<i", i))

  def int_tuple(values):
    out.write(b"(")
    for v in values:
      integer(v)
    out.write(b"t")

  out.write(b"\x80\x02ccollections\nOrderedDict\n)R(")
  for key, (name, value) in enumerate(tensors.items()):
    value = np.ascontiguousarray(value, np.float32)
    string(name)
    out.write(b"ctorch._utils\n_rebuild_tensor_v2\n(")
    out.write(b"(")
    string("storage")
    out.write(b"ctorch\nFloatStorage\n")
    string(str(key))
    string("cpu")
    integer(value.size)
    out.write(b"tQ")  # persistent id tuple -> storage
    integer(0)
    int_tuple(value.shape)
    int_tuple([s // 4 for s in value.strides])
    out.write(b"\x89ccollections\nOrderedDict\n)Rt")  # requires_grad, hooks
    out.write(b"R")
  out.write(b"u.")
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", out.getvalue())
    for key, value in enumerate(tensors.values()):
      z.writestr(f"archive/data/{key}", np.ascontiguousarray(value, "<f4").tobytes())
    z.writestr("archive/version", "3\n")


def _pytorch_fid_state_dict(rng) -> dict[str, np.ndarray]:
  """Random weights in pytorch-fid's FIDInceptionV3 state-dict layout."""
  state = {}
  params = jax.eval_shape(
    lambda: inception.InceptionV3(logits=True, has_scale=True).init(
      jax.random.PRNGKey(0), jnp.zeros((1, 299, 299, 3))
    )
  )["params"]
  for name, _, _, _ in inception.conv_names():
    node = params
    for part in name.split("/"):
      node = node[part]
    kh, kw, cin, cout = node["kernel"].shape
    p = name.replace("/", ".")
    state[f"{p}.conv.weight"] = rng.normal(0, (kh * kw * cin) ** -0.5, (cout, cin, kh, kw)).astype(
      np.float32
    )
    state[f"{p}.bn.weight"] = rng.uniform(0.5, 1.5, cout).astype(np.float32)
    state[f"{p}.bn.bias"] = rng.normal(0, 0.1, cout).astype(np.float32)
    state[f"{p}.bn.running_mean"] = rng.normal(0, 0.1, cout).astype(np.float32)
    state[f"{p}.bn.running_var"] = rng.uniform(0.5, 2, cout).astype(np.float32)
  state["fc.weight"] = rng.normal(0, 0.02, (1008, 2048)).astype(np.float32)
  state["fc.bias"] = rng.normal(0, 0.02, 1008).astype(np.float32)
  return state


def test_pytorch_fid_layout_loader_on_random_weights(tmp_path, monkeypatch):
  rng = np.random.default_rng(2)
  state = _pytorch_fid_state_dict(rng)
  path = str(tmp_path / "pt_inception-random.pth")
  _write_torch_state_dict(path, state)
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path / "cache"))
  inception.convert_full(path)
  params = inception.load_params(full=True)
  conv = params["Mixed_6b"]["branch7x7_2"]
  np.testing.assert_array_equal(
    conv["kernel"], state["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0)
  )
  np.testing.assert_array_equal(conv["scale"], state["Mixed_6b.branch7x7_2.bn.weight"])
  np.testing.assert_array_equal(conv["mean"], state["Mixed_6b.branch7x7_2.bn.running_mean"])
  np.testing.assert_array_equal(params["fc_kernel"], state["fc.weight"].T)
  # The full network runs with these weights and its logits are pool3 @ W (no bias).
  x = np.random.default_rng(3).integers(0, 256, (2, 299, 299, 3)).astype(np.uint8)
  out = jax.jit(inception.apply)(params, x)
  assert out["pool3"].shape == (2, 2048) and out["logits_unbiased"].shape == (2, 1008)
  np.testing.assert_allclose(
    out["logits_unbiased"], np.asarray(out["pool3"]) @ state["fc.weight"].T, rtol=1e-4, atol=1e-5
  )
  assert np.all(np.isfinite(out["pool3"])) and np.std(out["pool3"]) > 0
  # The extractor exposes the logits for the Inception score.
  extractor = features_lib.EXTRACTORS.get("inception")({"inception_weights": "full"})
  assert set(extractor.outputs.values()) == {"features", "logits"}


def test_pytorch_fid_loader_explains_a_wrong_file(tmp_path):
  path = str(tmp_path / "wrong.pth")
  _write_torch_state_dict(path, {"conv.weight": np.zeros((2, 2), np.float32)})
  with pytest.raises(ValueError, match="pytorch-fid"):
    inception.convert_pytorch_fid(path)


def test_cli_converts_a_pytorch_fid_file(tmp_path, monkeypatch, capsys):
  path = str(tmp_path / "pt_inception-random.pth")
  _write_torch_state_dict(path, _pytorch_fid_state_dict(np.random.default_rng(4)))
  monkeypatch.setenv("GAN_JAX_CACHE", str(tmp_path / "cache"))
  inception.cli(["inception", f"--convert_pytorch_fid={path}"])
  record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert record == {"full_weights": inception.weights_path(full=True)}
  assert os.path.isfile(record["full_weights"])


def test_cli_without_an_action_says_what_to_pass(capsys):
  with pytest.raises(SystemExit) as e:
    inception.cli(["inception"])
  assert e.value.code == 2
  assert "--download" in capsys.readouterr().err
