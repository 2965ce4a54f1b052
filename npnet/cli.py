"""The ``npnet`` command: ``npnet tutorial`` runs the TensorFlow basic-classification tutorial.

``npnet tutorial`` follows the seed tutorial step by step on the real Fashion-MNIST data:
the data facts, the model, five epochs of training with a progress bar, evaluation, the
predictions for the first test image and for a single image; ``--out DIR`` also writes the
metrics, the trained model and the tutorial's figures.

Every error in the command line, including a ``--data-dir`` that is not a directory and an
``--out`` that cannot be written, is reported before any work starts, as one line on stderr
(``npnet tutorial: error: ...``), with exit status 2.
"""

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np


#: With --out, diagnostics.png shows what npnet.callbacks.Diagnostics records every this many steps.
DIAGNOSTICS_EVERY = 100


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr and exit status 2, without the usage block."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text):
    """argparse type: an integer > 0, with an error that names what was received."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0, with an error that names what was received."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, received {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, received {text!r}")
    return value


def _verbose(text):
    if text == "auto":
        return text
    if text in ("0", "1", "2"):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected auto, 0, 1 or 2, received {text!r}")


def build_parser():
    from . import backends

    parser = OneLineParser(
        prog="npnet",
        description="Run the TensorFlow basic-classification tutorial on npnet (npnet tutorial) "
                    "and check backpropagation against finite differences (npnet gradcheck).")
    parser.add_argument("--version", action="version", version=f"npnet {_npnet_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    tutorial = commands.add_parser(
        "tutorial", help="run the TensorFlow basic-classification tutorial on Fashion-MNIST",
        description="Run the TensorFlow basic-classification tutorial (Fashion-MNIST, "
                    "Flatten -> Dense(128, relu) -> Dense(10, softmax), Adam) end to end.")
    tutorial.add_argument("--epochs", type=non_negative_int, default=5, help="training epochs (default 5)")
    tutorial.add_argument("--batch-size", type=positive_int, default=32, help="batch size (default 32)")
    tutorial.add_argument("--seed", type=non_negative_int, default=None,
                          help="random seed for weights and shuffling (default: unseeded)")
    tutorial.add_argument("--backend", choices=backends.names(), default=None,
                          help="arithmetic backend (default: $NPNET_BACKEND, else auto: numba when it covers the model)")
    tutorial.add_argument("--data-dir", default=None,
                          help="directory holding the four Fashion-MNIST .gz files (default: search)")
    tutorial.add_argument("--out", default=None, metavar="DIR",
                          help="write metrics.json, model.npnet and the tutorial's figures here")
    tutorial.add_argument("--no-plots", action="store_true", help="with --out, skip the figures")
    tutorial.add_argument("--verbose", type=_verbose, default="auto",
                          help="progress output: auto (default), 0 silent, 1 progress bar, 2 one line per epoch")
    tutorial.set_defaults(run=run_tutorial, check=_check_tutorial_paths, parser=tutorial)

    gradcheck = commands.add_parser(
        "gradcheck", add_help=False,
        help="check backpropagation against finite differences on the tutorial model")
    gradcheck.set_defaults(run=None, check=None)
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gradcheck"]:
        # gradcheck has its own options; hand them over untouched.
        from .gradcheck import main as gradcheck_main
        return gradcheck_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.check is not None:
        problem = args.check(args)
        if problem is not None:
            args.parser.error(problem)
    return args.run(args)


def _directory_problem(path):
    """Why ``path`` is not an existing, searchable directory, or None."""
    try:
        if not os.path.isdir(path) and os.path.exists(path):
            return "it is not a directory"
        os.listdir(path)
    except FileNotFoundError:
        return "no such directory"
    except NotADirectoryError:
        return "part of it is not a directory"
    except OSError as error:
        return error.strerror or str(error)
    return None


def _missing_data_files(directory):
    """Why ``directory`` cannot be the data the user meant, or None: a directory with none of
    the four files would otherwise be passed over silently for another copy."""
    from .datasets import fashion_mnist

    names = list(fashion_mnist.FILES)
    if any(os.path.lexists(os.path.join(directory, n + suffix)) for n in names for suffix in (".gz", "")):
        return None  # a bad or partial set is reported by load_data itself, file by file
    return f"none of {', '.join(n + '.gz' for n in names)} is there"


def _check_tutorial_paths(args):
    """Check --data-dir and --out before any work starts; return the problem, or None.

    ``--out`` is created if needed and must accept a new file: the outputs are written only
    after the whole tutorial ran, which is too late to find out.
    """
    if args.data_dir is not None:
        problem = _directory_problem(args.data_dir)
        if problem is None:
            problem = _missing_data_files(args.data_dir)
        if problem is not None:
            return (f"--data-dir: expected a directory holding the Fashion-MNIST files, "
                    f"received {args.data_dir!r} ({problem})")
    if args.out is not None:
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            return f"--out: expected a directory to write into, received {args.out!r} (a file)"
        try:
            os.makedirs(args.out, exist_ok=True)
            tempfile.TemporaryFile(dir=args.out).close()
        except OSError as error:
            return (f"--out: expected a directory npnet can write into, received {args.out!r} "
                    f"({error.strerror or error})")
    return None


def _say(text=""):
    print(text, flush=True)


def run_tutorial(args):
    """The seed tutorial, step by step; returns the process exit code."""
    import npnet

    timings = {}
    started = time.perf_counter()
    if args.seed is not None:
        npnet.utils.set_random_seed(args.seed)
    t = time.perf_counter()
    try:
        (train_images, train_labels), (test_images, test_labels) = \
            npnet.datasets.fashion_mnist.load_data(args.data_dir)
    except npnet.datasets.DatasetNotFoundError as error:
        print(f"npnet tutorial: {error}", file=sys.stderr)
        return 2
    timings["load_data_s"] = time.perf_counter() - t
    _explore(train_images, train_labels, test_images, test_labels)
    # The tutorial divides by 255.0, which makes float64 copies; float32 holds the same values
    # for this model, which computes in float32 anyway, at half the memory. The figures show
    # raw 0..255 pixels, as the tutorial's do; they need only the first 25 training images,
    # so the other uint8 training pixels are not kept alive.
    raw_train_images, raw_test_images = train_images[:25].copy(), test_images
    train_images, test_images = _scale(train_images), _scale(raw_test_images)

    model = _build_and_compile(npnet, args, timings)
    # With figures to write, watch training from inside too (diagnostics.png).
    diagnostics = npnet.callbacks.Diagnostics(every=DIAGNOSTICS_EVERY) \
        if args.out is not None and not args.no_plots else None
    history = _train(npnet, model, train_images, train_labels, args, timings, diagnostics)
    test_loss, test_acc, predictions, single = _evaluate_and_predict(model, test_images, test_labels,
                                                                     args, timings)
    timings["total_s"] = time.perf_counter() - started
    if args.out is not None:
        _write_outputs(args, model, history, test_loss, test_acc, timings,
                       raw_train_images, train_labels[:25], raw_test_images, test_labels,
                       (predictions, single), diagnostics)
    return 0


def _explore(train_images, train_labels, test_images, test_labels):
    from .datasets.fashion_mnist import CLASS_NAMES

    _say("== Explore the data")
    _say(f"train_images.shape: {train_images.shape}   len(train_labels): {len(train_labels)}")
    _say(f"train_labels: {train_labels}   (labels {train_labels.min()}..{train_labels.max()})")
    _say(f"test_images.shape: {test_images.shape}   len(test_labels): {len(test_labels)}")
    _say(f"pixel values: {train_images.min()}..{train_images.max()}; scaled to 0..1 before training")
    _say("class names: " + ", ".join(f"{i} {name}" for i, name in enumerate(CLASS_NAMES)))


def _build_and_compile(npnet, args, timings):
    _say("\n== Build the model")
    model = npnet.Sequential([
        npnet.layers.Flatten(input_shape=(28, 28)),
        npnet.layers.Dense(128, activation="relu"),
        npnet.layers.Dense(10, activation="softmax"),
    ])
    t = time.perf_counter()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  backend=args.backend)
    timings["compile_s"] = time.perf_counter() - t
    model.summary()
    _say(f"backend: {model.backend_name}")
    return model


def _train(npnet, model, train_images, train_labels, args, timings, diagnostics=None):
    _say(f"\n== Train the model ({args.epochs} epochs, batch size {args.batch_size})")
    epoch_times = []

    class EpochTimer(npnet.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self.start)

    t = time.perf_counter()
    history = model.fit(train_images, train_labels, epochs=args.epochs, batch_size=args.batch_size,
                        verbose=args.verbose,
                        callbacks=[EpochTimer()] + ([diagnostics] if diagnostics is not None else []))
    timings["fit_s"] = time.perf_counter() - t
    timings["epoch_s"] = epoch_times
    return history


def _evaluate_and_predict(model, test_images, test_labels, args, timings):
    from .datasets.fashion_mnist import CLASS_NAMES

    _say("\n== Evaluate accuracy")
    t = time.perf_counter()
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=args.verbose)
    timings["evaluate_s"] = time.perf_counter() - t
    _say(f"Test accuracy: {test_acc:.4f}   Test loss: {test_loss:.4f}")

    _say("\n== Make predictions")
    t = time.perf_counter()
    predictions = model.predict(test_images)
    timings["predict_s"] = time.perf_counter() - t
    with np.printoptions(precision=4, suppress=False):
        _say(f"predictions.shape: {predictions.shape} {predictions.dtype}")
        _say(f"predictions[0]: {predictions[0]}")
    guess = int(np.argmax(predictions[0]))
    _say(f"np.argmax(predictions[0]): {guess} ({CLASS_NAMES[guess]}); "
         f"test_labels[0]: {test_labels[0]} ({CLASS_NAMES[test_labels[0]]})")

    _say("\n== Use the trained model on a single image")
    img = np.expand_dims(test_images[0], 0)  # the seed tutorial's image: a batch of one
    single = model.predict(img)
    guess = int(np.argmax(single[0]))
    _say(f"img.shape: {img.shape}   model.predict(img).shape: {single.shape}")
    _say(f"np.argmax(predictions_single[0]): {guess} ({CLASS_NAMES[guess]}); "
         f"test_labels[0]: {test_labels[0]} ({CLASS_NAMES[test_labels[0]]})")
    return test_loss, test_acc, predictions, single


def _scale(images):
    """uint8 pixels -> float32 in [0, 1], dividing in place so only one float copy exists."""
    scaled = images.astype(np.float32)
    scaled /= np.float32(255)
    return scaled


def _write_outputs(args, model, history, test_loss, test_acc, timings,
                   train_images, train_labels, test_images, test_labels, predictions, diagnostics=None):
    import npnet

    predictions, single = predictions
    out = args.out
    model_path = os.path.join(out, "model.npnet")
    model.save(model_path)
    written = [model_path]
    if not args.no_plots:
        written += [str(p) for p in npnet.plot.write_tutorial_figures(
            out, history=history, train_images=train_images, train_labels=train_labels,
            test_images=test_images, test_labels=test_labels, predictions=predictions,
            class_names=npnet.datasets.fashion_mnist.CLASS_NAMES, model=model,
            predictions_single=single,
            diagnostics_record=diagnostics if diagnostics is not None and diagnostics.steps else None)]
    metrics = {
        "history": history.history,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "timings": timings,
        "settings": {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                     "backend": model.backend_name},
        "versions": {"npnet": _npnet_version(), "numpy": np.__version__,
                     "python": platform.python_version()},
        "files": [os.path.basename(p) for p in written],
    }
    metrics_path = os.path.join(out, "metrics.json")
    npnet.utils.write_json_atomic(metrics_path, metrics)
    _say(f"\nWrote {metrics_path} and {len(written)} more files to {out}")


def _npnet_version():
    from . import __version__
    return __version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
