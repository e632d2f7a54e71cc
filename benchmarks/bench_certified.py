"""Certified training's costs, in one process: an IBP training epoch against a normal one (the same batched
trainer and network, 5 models at once), and certifying 10,000 test images by IBP (ours, 5 models at once
through vmap) against the adversarial-robustness-toolbox's PyTorchIBPClassifier.predict_intervals (one model
at a time, the naive logit bounds only), and by CROWN (ours).

    python benchmarks/bench_certified.py [--model mlp4|cnn] [--n-train 10000] [--models 5] [--images 10000]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch


def _timed(f):
    start = time.perf_counter()
    out = f()
    return time.perf_counter() - start, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("mlp4", "cnn"), default="mlp4")
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=5)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args(argv)
    os.environ.setdefault("POISONLAB_CACHE", tempfile.mkdtemp(prefix="poisonlab-bench-"))
    from poisonlab import train
    from poisonlab.chapters.certified_training.pipeline import Trained, margins, spec_of, test_images
    from poisonlab.chapters.evasion.pipeline import train_subset
    from poisonlab.models import bounds

    K, spec = args.models, spec_of(args.model)
    X, y = train_subset(args.n_train, 0)
    Xs, ys = X.expand(K, *X.shape), y.expand(K, *y.shape)

    def fit(objective=None):
        return train.train_batched(Xs, ys, model=spec, loss="ce", epochs=1, lr=1e-3, batch_size=128,
                                   seeds=list(range(K)), out_dim=10, optimizer=train.Adam(), objective=objective)

    normal, model = _timed(fit)
    ibp, _ = _timed(lambda: fit(train.IBP(spec, 0.1, kappa=0.5, elide=True)))
    naive, _ = _timed(lambda: fit(train.IBP(spec, 0.1, kappa=0.0, elide=False)))
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"one epoch, {K} x {args.model} on {args.n_train} images: normal {normal:.2f} s, IBP (kappa 0.5, elided) "
          f"{ibp:.2f} s ({ibp / normal:.2f}x), IBP (kappa 0, naive) {naive:.2f} s ({naive / normal:.2f}x)")

    trained = Trained(spec, model.params, 0.0, torch.zeros(1))
    Xt, yt = test_images(args.images)
    t_ibp, _ = _timed(lambda: margins(trained, Xt, yt, 0.01, "ibp"))
    print(f"certify {args.images} images x {K} models: IBP margins {t_ibp:.2f} s")
    if args.model == "mlp4":
        t_crown, _ = _timed(lambda: margins(trained, Xt, yt, 0.01, "crown"))
        print(f"certify {args.images} images x {K} models: CROWN margins {t_crown:.2f} s")
    try:
        from art.estimators.certification.interval import PyTorchIBPClassifier
    except ImportError:
        print("adversarial-robustness-toolbox is not installed: no reference timing")
        return 0
    one = {k: v[0] for k, v in model.params.items()}
    t_ours, ours = _timed(lambda: bounds.logit_bounds(spec, one, Xt, 0.01))
    # ART's converter hooks only the model's Conv2d, Linear and ReLU children: the spec's torch layers without its
    # reshaping ones, on flat rows (the fully connected network only)
    layers = [m if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) else torch.nn.ReLU()
              for m in spec.sequential(one) if isinstance(m, torch.nn.Linear) or "ReLU" in repr(m)]
    if args.model != "mlp4":
        print("ART's reference timing: the fully connected network only (ART has no max-pooling)")
        return 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        art = PyTorchIBPClassifier(model=torch.nn.Sequential(*layers), loss=torch.nn.CrossEntropyLoss(),
                                   input_shape=(784,), nb_classes=10, device_type="cpu")
    rows = Xt.reshape(len(Xt), -1).numpy()
    t_art, out = _timed(lambda: art.predict_intervals(rows, bounds=0.01, limits=[0.0, 1.0]))
    diff = max(float(abs(out[:, 0] - ours[0].numpy()).max()), float(abs(out[:, 1] - ours[1].numpy()).max()))
    print(f"naive logit bounds of {args.images} images, one model: ours {t_ours:.3f} s, ART {t_art:.3f} s "
          f"(ART / ours = {t_art / t_ours:.1f}; largest difference {diff:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
