"""fastnst-infer: stylize photos, folders, globs and video files with a trained style.

    fastnst-infer photo.jpg holiday/ 'scans/*.png' --style starry_night -o stylized/
    fastnst-infer clip.mp4 --style mosaic -o clip_mosaic.mp4 --smooth 0.6
    fastnst-infer --webcam 0 --style starry_night --style mosaic
    fastnst-infer photo.jpg --style starry_night:0.6,great_wave:0.4     # a blend

Outputs are named `<stem>_<style>.<ext>` (inside `-o` when it is a folder, else in the current
folder; a folder input keeps its subfolders; inputs whose outputs would share a name get their
suffix in it). Existing outputs are kept unless `--overwrite`; an input is never overwritten.
A bad input is reported in one line and the others still run; the exit status is 0 when all
succeeded, 1 when any failed, 2 for a usage error, 130 after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from fastnst.config_checks import add_options, bounded, options_from_args
from fastnst.console import prepare_console, shown
from fastnst.errors import FastnstError, UsageError, print_error
from fastnst.files import (
    WriteError,
    check_name_length,
    check_output,
    check_writable,
    files_under,
    fit_name,
    resolved,
)
from fastnst.images import (
    IMAGE_SUFFIXES,
    WRITE_FORMATS,
    ImageError,
    read_image,
    write_image,
)
from fastnst.model_files import ModelFileError
from fastnst.styles import fast_variant, implied_note, load_style, resolve_style
from fastnst.stylize_options import WEBCAM_SIDE, StylizeOptions
from fastnst.stylizer import BACKENDS, Backend, stylize
from fastnst.video import VIDEO_OUTPUT, VIDEO_SUFFIXES, is_video, stylize_video


@dataclass
class Job:
    """One input file, the style (an index into the loaded backends) and where the result goes."""

    source: Path
    style: int
    output: Path


@dataclass
class OutputPlan:
    """The jobs of a run, and what was said or skipped while planning them."""

    jobs: list[Job]
    notes: list[str] = field(default_factory=list)  # renamed outputs, said before the run
    failed: list[str] = field(default_factory=list)  # inputs skipped: "path: problem"
    within: Path | None = None  # the folder every output must stay in (-o, or here)


@dataclass
class Report:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # existing outputs not overwritten
    failed: list[str] = field(default_factory=list)  # one line each: "path: problem"


def expand_inputs(specs: Sequence[str]) -> tuple[list[tuple[Path, Path | None]], list[str]]:
    """Files, folders (recursive) and globs -> `(file, folder it came from)` pairs, and errors
    for specs that match nothing. Taken once, before anything is written."""
    found: list[tuple[Path, Path | None]] = []
    errors: list[str] = []
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            files = files_under(path, suffixes)
            if not files:
                errors.append(f"{path}: no images or videos in this folder")
            found += [(f, path) for f in files]
        elif path.exists() or path.is_symlink() or not glob.has_magic(spec):
            found.append((path, None))  # a missing file is reported when it is read
        else:
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            if not matches:
                errors.append(f"{spec}: no file matches this pattern")
            found += [(m, None) for m in matches if not m.is_dir()]
    return found, errors


def _output_file(output: Path | None) -> Path | None:
    """`-o` when it names one file to write (its suffix says which kind), None for a folder;
    UsageError for a suffix fastnst reads but cannot write (`-o out.gif`)."""
    if output is None or output.is_dir():
        return None
    suffix = output.suffix.lower()
    if suffix in WRITE_FORMATS or suffix == VIDEO_OUTPUT:
        return output
    if suffix in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        raise UsageError(f"-o {shown(output)}: fastnst writes images as"
                         f" {' '.join(sorted(WRITE_FORMATS))} and videos as {VIDEO_OUTPUT};"
                         " give one of those, or a folder")
    return None  # a folder to create ("out", "v1.2")


def plan(inputs: list[tuple[Path, Path | None]], output: Path | None, styles: Sequence[str],
         style_files: Sequence[Path] = ()) -> OutputPlan:
    """Where each input's result goes for each style (see the module docstring).

    Raises UsageError when `-o` cannot hold the results. Inputs whose default output names
    collide get their suffix in the name (`x_gif_mosaic.png`, `x_png_mosaic.png`); an output
    that would replace one of the inputs, or one of the `style_files` the run paints with
    (paintings, model files), is refused, its input skipped."""
    file = _output_file(output)
    # The same file named twice (a folder and a file in it, a relative and an absolute path)
    # runs once.
    seen: set[Path] = set()
    sources = []
    for source, root in inputs:
        if (key := resolved(source)) not in seen:
            seen.add(key)
            sources.append((source, root))
    if file is not None:
        count = len(sources) * len(styles)
        if count != 1:
            raise UsageError(f"-o {shown(file)} is one file, but {len(sources)} inputs and"
                             f" {len(styles)} styles make {count} results; give a folder")
        source = sources[0][0]
        if is_video(source) != (file.suffix.lower() == VIDEO_OUTPUT):
            kind = "a video" if is_video(source) else "an image"
            want = VIDEO_OUTPUT if is_video(source) else " ".join(sorted(WRITE_FORMATS))
            raise UsageError(f"-o {shown(file)}: {shown(source)} is {kind}; its result must be"
                             f" {want}")
        jobs = [Job(source, 0, file)]
    else:
        jobs = [Job(source, i, _in_folder(output or Path.cwd(), source, root, style))
                for i, style in enumerate(styles) for source, root in sources]
    result = OutputPlan(jobs, within=None if file is not None else output or Path.cwd())
    _separate_collisions(result, styles)
    inputs_at = seen  # every input, resolved
    styles_at = {resolved(path) for path in style_files}
    for job in list(result.jobs):
        if (at := resolved(job.output)) in inputs_at | styles_at:
            what = "the inputs" if at in inputs_at else "this run's style files (--style)"
            result.jobs.remove(job)
            result.failed.append(f"{shown(job.source)}: its output {shown(job.output)} is one of"
                                 f" {what}; not replaced, skipped")
    return result


def _in_folder(folder: Path, source: Path, root: Path | None, style: str) -> Path:
    """`<folder>/<subfolders under root>/<stem>_<style><ext>`."""
    suffix = source.suffix.lower()
    ext = VIDEO_OUTPUT if is_video(source) else suffix if suffix in WRITE_FORMATS else ".png"
    if root is not None:
        folder = folder / source.parent.relative_to(root)
    return folder / fit_name(source.stem, f"_{style}{ext}")


def _separate_collisions(result: OutputPlan, styles: Sequence[str]) -> None:
    """Outputs named alike (`x.gif` and `x.png`, `a.JPG` and `a.jpg`, two models with one style
    name) get the input's suffix, or the style's place on the command line, in their names; any
    still alike are skipped, their inputs named."""
    for attempt in ("rename", "skip"):
        groups: dict[Path, list[Job]] = {}
        for job in result.jobs:
            groups.setdefault(job.output, []).append(job)
        for output, jobs in groups.items():
            if len(jobs) < 2:
                continue
            names = " and ".join(dict.fromkeys(shown(j.source) for j in jobs))
            if attempt == "skip":
                result.jobs = [j for j in result.jobs if j not in jobs]
                result.failed.append(f"{names}: would all be written to {shown(output)};"
                                     " skipped (rename one)")
                continue
            by_suffix = len({j.source for j in jobs}) > 1
            by_place = len({j.style for j in jobs}) > 1
            for job in jobs:
                style = styles[job.style]
                base = job.output.name.removesuffix(job.output.suffix).removesuffix(style)
                tag = f"{job.source.suffix.lstrip('.')}_" if by_suffix else ""
                place = f"-{job.style + 1}" if by_place else ""
                job.output = job.output.with_name(f"{base}{tag}{style}{place}{job.output.suffix}")
            result.notes.append(f"{names} would share the output {shown(output)}; writing "
                                + ", ".join(shown(j.output.name) for j in jobs))


def stylize_file(backend: Backend, job: Job, options: StylizeOptions, overwrite: bool) -> None:
    """Read, stylize and write one image (raises ImageError, BadResultError, WriteError, and
    FileExistsError when the output exists and `overwrite` is off)."""
    image = read_image(job.source, max_size=options.max_size)
    write_image(stylize(backend, image, options), job.output, replace=overwrite)


def out_of_memory(error: BaseException) -> bool:
    """True for running out of memory: Python's MemoryError, CUDA's, or the CPU allocator's
    (a RuntimeError that says so)."""
    return isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and (
        "out of memory" in str(error) or "can't allocate memory" in str(error)))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fastnst-infer", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("inputs", nargs="*", help="image or video files, folders, globs")
    parser.add_argument("-s", "--style", action="append", default=[],
                        help="a shipped style name, a .safetensors or .onnx file, a blend of"
                             " the multi-style model's styles (starry_night:0.6,great_wave:0.4),"
                             " or any painting (an image file: no training);"
                             " repeat for several (each input gets each style; the webcam"
                             " cycles)")
    parser.add_argument("--multi", metavar="MODEL",
                        help="the multi-style model (a .safetensors or .onnx file) that blends"
                             " and every --style name come from (default: the shipped one, for"
                             " blends and styles without a model of their own)")
    parser.add_argument("--fast", action="store_true",
                        help="use each style's fast network (<style>-fast: real time on CPUs)")
    parser.add_argument("-o", "--output", type=Path, help="output file (one input) or folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--backend", choices=("auto", *BACKENDS), default="auto",
                        help="auto (default): ONNX Runtime for videos and the webcam on a CPU"
                             " (1080p at video rate), PyTorch for images")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--half", action="store_true",
                        help="half precision: float16 on CUDA, bfloat16 on CPUs with AMX")
    add_options(parser, StylizeOptions)  # --max-size, --strength, --tile, --smooth ...
    parser.add_argument("--webcam", type=bounded(0, 1000), metavar="INDEX",
                        help="live view of camera INDEX (keys: n next style, b blend towards"
                             " it, q quit)")
    parser.add_argument("--list-styles", action="store_true", help="list shipped styles, exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.webcam is not None and args.inputs:
        parser.error("--webcam takes no input files")
    if not args.list_styles and args.webcam is None:
        if not args.style:
            parser.error("--style is required")
        if not args.inputs:
            parser.error("give at least one input")
    args.options = options_from_args(StylizeOptions, args, parser)
    return args


def chosen_backend(args: argparse.Namespace, moving: bool) -> str:
    """What `--backend` runs on: as given, or for `auto` ONNX Runtime for moving pictures
    (videos, the webcam) on a CPU without `--half`, where its frame path is 3x PyTorch's
    (docs/benchmarks.md), else PyTorch (still images, CUDA, and any run with a painting as a
    style, whose tiles share one picture's statistics on PyTorch; `--backend onnx` runs the
    painter's ONNX graph)."""
    from importlib.util import find_spec

    from fastnst.device import resolve_device
    from fastnst.styles import written_as

    if args.backend != "auto":
        return args.backend
    paintings = any(written_as(s) == "painting" for s in args.style or ())
    if moving and not paintings and not args.half and resolve_device(args.device).type == "cpu" \
            and find_spec("onnxruntime") is not None:
        return "onnx"
    return "torch"


def load_styles(specs: Sequence[str], args: argparse.Namespace
                ) -> tuple[list[Backend], list[Path]]:
    """A backend per distinct --style, each resolved and loaded once (fastnst.styles): a style
    given again (by the same name or file) runs once, said in a note; a multi-style model named
    alone says in a note which of its styles runs. Also the files they read (paintings, model
    files, --multi): outputs never replace them."""
    backends, seen, repeated, files = [], set(), [], []
    for spec in specs:
        choice = resolve_style(spec, args.multi)
        files.append(choice.path)
        key = (type(choice).__name__, str(choice.path.resolve()),
               getattr(choice, "style", None), getattr(choice, "parts", None))
        if key in seen:
            repeated += [] if spec in repeated else [spec]
            continue
        seen.add(key)
        backend = load_style(choice, args.backend, args.device, args.half)
        if note := implied_note(spec, choice, backend):
            print(f"fastnst-infer: note: {shown(note)}", file=sys.stderr)
        backends.append(backend)
    if repeated:
        print(f"fastnst-infer: note: {shown(', '.join(repeated))}: given more than once (or the"
              " same model by another name); each runs once", file=sys.stderr)
    return backends, files


def live(args: argparse.Namespace) -> int:
    """The webcam view: every --style (default: the styles of the multi-style model --multi or
    the shipped one, else the shipped fast networks, else all shipped styles), cycled with
    keys, at most WEBCAM_SIDE pixels unless --max-size says otherwise."""
    from fastnst.model_files import FAST_SUFFIX, shipped_models
    from fastnst.style_mix import MULTI_MODEL
    from fastnst.styles import model_styles
    from fastnst.webcam import TkWindow, open_camera, run_webcam

    args.backend = chosen_backend(args, moving=True)
    shipped = sorted(shipped_models())
    styles = args.style
    if not styles and (args.multi or MULTI_MODEL in shipped):
        args.multi = args.multi or MULTI_MODEL
        styles = model_styles(args.multi, args.backend, args.device, args.half)
    styles = styles or [s for s in shipped if s.endswith(FAST_SUFFIX)] or shipped
    if not styles:
        raise ModelFileError("--style", "no style given and none shipped")
    backends, _ = load_styles(styles, args)
    capture = open_camera(args.webcam)
    try:
        window = TkWindow()
    except BaseException:
        capture.release()
        raise
    options = replace(args.options, max_size=args.options.max_size or WEBCAM_SIDE)
    frames = run_webcam(capture, window, backends, options)
    print(f"showed {frames} frames")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit status."""
    prepare_console()
    from tqdm import tqdm

    from fastnst.model_files import read_metadata, shipped_models

    args = parse_args(argv)
    if args.list_styles:
        shipped = shipped_models()
        names = sorted(shipped)
        print("\n".join(names) if names else "no styles shipped yet")
        for name in names:
            styles = read_metadata(shipped[name]).get("styles")
            if styles:
                print(f"\n{name} is a multi-style model of {', '.join(styles)}: blend them with"
                      f" --style {styles[0]}:0.6,{styles[-1]}:0.4")
        return 0
    try:
        if args.fast:
            args.style = [fast_variant(s) for s in args.style]
        if args.webcam is not None:
            return live(args)
        if args.output is not None:
            check_name_length(args.output)
        inputs, report_errors = expand_inputs(args.inputs)
        args.backend = chosen_backend(args, any(is_video(source) for source, _ in inputs))
        backends, style_files = load_styles(args.style, args)
        work = plan(inputs, args.output, [b.style for b in backends], style_files)
        if args.output is not None:  # checked now, not once per input
            check_writable(args.output if _output_file(args.output) else args.output / "x.png")
    except FastnstError as e:
        return print_error("fastnst-infer", e)
    except KeyboardInterrupt:
        print("fastnst-infer: interrupted; nothing written", file=sys.stderr)
        return 130
    for note in work.notes:
        print(f"fastnst-infer: note: {note}", file=sys.stderr)
    report = Report(failed=[*map(shown, report_errors), *work.failed])
    for line in report.failed:
        print(f"fastnst-infer: {line}", file=sys.stderr)
    start = time.perf_counter()
    bar = tqdm(work.jobs, unit="file", disable=args.quiet or len(work.jobs) < 2)
    try:
        for job in bar:
            try:
                check_output(job.output, style_files, args.overwrite, within=work.within)
                if is_video(job.source):
                    stylize_video(job.source, job.output, backends[job.style], args.options,
                                  replace=args.overwrite, progress=not args.quiet)
                else:
                    stylize_file(backends[job.style], job, args.options, args.overwrite)
                report.written.append(job.output)
            except FileExistsError:  # it exists, or another run wrote it since the check
                report.kept.append(job.output)
            except (ImageError, WriteError) as e:  # the message names the file
                report.failed.append(shown(e))
                tqdm.write(f"fastnst-infer: {shown(e)}", file=sys.stderr)
            except Exception as e:  # the other inputs go on
                if isinstance(e, (FastnstError, OSError)) or out_of_memory(e):
                    line = shown(f"{job.source}: " + (str(e) if isinstance(e, FastnstError)
                                                      else f"{type(e).__name__}: {e}"))
                else:  # a bug: its traceback, for the report
                    line = shown(f"{job.source}: internal error (traceback above)")
                    tqdm.write(traceback.format_exc(), file=sys.stderr)
                report.failed.append(line)
                tqdm.write(f"fastnst-infer: {line}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"fastnst-infer: interrupted; {len(report.written)} outputs finished"
              + (f", the last in {shown(report.written[-1].parent)}" if report.written else ""),
              file=sys.stderr)
        return 130
    seconds = time.perf_counter() - start
    kept = (f", {len(report.kept)} kept (they exist; --overwrite replaces them)"
            if report.kept else "")
    print(f"{len(report.written)} written{kept}, {len(report.failed)} failed, in {seconds:.1f} s"
          + (f"; outputs in {shown(report.written[0].parent)}" if report.written else ""))
    if len(report.failed) > 1 and (report.written or report.kept):
        for line in report.failed:  # a list to act on when they are scattered among others
            print(f"  failed: {line}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
