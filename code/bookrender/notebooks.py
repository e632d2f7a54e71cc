"""Chapter notebooks: built from the .qmd (inline values as hidden cells), executed by nbclient, errors named."""
from __future__ import annotations

import os
import re
import signal
import tempfile
import threading
from pathlib import Path

import nbformat

from .model import Chapter, RenderError
from .qmd import display_path, inline_expressions

INLINE_MIME = "application/vnd.bookrender.inline+json"
DEFAULT_TIMEOUT = 1800  # seconds per cell: a full-profile sweep may run for minutes


def figure_options(config: dict) -> dict:
    """fig-width, fig-height, fig-dpi of the HTML format of `_quarto.yml` (as Quarto applies them)."""
    html_format = ((config.get("format") or {}).get("html") or {}) if isinstance(config.get("format"), dict) else {}
    pick = {k: html_format.get(k, config.get(k)) for k in ("fig-width", "fig-height", "fig-dpi")}
    return {k: v for k, v in pick.items() if v is not None}


def setup_source(figure: dict, formats=("png",)) -> str:
    """The hidden first cell: figure size, resolution and formats, and the inline-expression helper.

    An inline value is shown as Quarto shows it: the kernel's display formatter gives its MIME
    bundle (what a `user_expressions` request returns), and `inline_value` picks from it.
    """
    lines = ["import matplotlib as _plt_mpl"]
    if "fig-width" in figure and "fig-height" in figure:
        lines.append(f"_plt_mpl.rcParams['figure.figsize'] = ({figure['fig-width']}, {figure['fig-height']})")
    if "fig-dpi" in figure:
        lines.append(f"_plt_mpl.rcParams['figure.dpi'] = {figure['fig-dpi']}")
    lines += [
        "from matplotlib_inline.backend_inline import set_matplotlib_formats as _plt_formats",
        f"_plt_formats(*{tuple(formats)!r})",
        "def __bookrender_inline__(value):",
        "    from IPython import get_ipython",
        "    from IPython.display import display",
        "    bundle = get_ipython().display_formatter.format(value)[0]",
        f"    display({{{INLINE_MIME!r}: bundle}}, raw=True)",
        "del _plt_mpl, _plt_formats",
    ]
    return "\n".join(lines)


def code_tags(options: dict) -> list[str]:
    """Tags of Quarto's cell options: nbclient's (eval: false, error: true) and the hiding ones."""
    tags = {"include": (False, "remove_cell"), "echo": (False, "remove_input"), "output": (False, "remove_output"),
            "eval": (False, "skip-execution"), "error": (True, "raises-exception")}
    return [tag for key, (value, tag) in tags.items() if options.get(key) is value]


def build_notebook(chapter: Chapter, config: dict, figure: dict | None = None,
                   formats=("png",)) -> nbformat.NotebookNode:
    """The chapter as a notebook to execute: hidden setup and inline-expression cells included."""
    v4 = nbformat.v4
    defaults = dict(config.get("execute") or {})
    defaults.update(chapter.source.meta.get("execute") or {})
    figure = figure_options(config) if figure is None else figure
    cells = [v4.new_code_cell(setup_source(figure, formats),
                              metadata={"bookrender": {"role": "setup"}})]
    title = chapter.source.meta.get("title")
    if title:
        cells.append(v4.new_markdown_cell(f"# {title}", metadata={"bookrender": {"role": "title"}}))
    number = 0
    for block in chapter.source.blocks:
        if block.kind == "markdown":
            for expr, offset in inline_expressions(block.text):
                cells.append(v4.new_code_cell(f"__bookrender_inline__(({expr}))", metadata={
                    "bookrender": {"role": "inline", "expr": expr,
                                  "where": chapter.source.where(block.index + offset)}}))
            cells.append(v4.new_markdown_cell(block.text))
            continue
        number += 1
        where = f"{display_path(block.file or chapter.source.path)}:{block.code_line}"
        problem = next((p for p in block.problems if "YAML" in p[1] or "mapping" in p[1]), None)
        if problem:
            raise RenderError(f"{display_path(block.file or chapter.source.path)}:{problem[0]}: {problem[1]}")
        options = {**defaults, **block.options}
        cells.append(v4.new_code_cell(block.text, metadata={
            "tags": code_tags(options),
            "bookrender": {"role": "code", "cell": number, "where": where, "options": options,
                          "own": block.options}}))
    nb = v4.new_notebook(cells=cells)
    nb.metadata.update({"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                        "language_info": {"name": "python"}, "title": chapter.title})
    return nb


def kernel_env(profile: str) -> dict:
    """The kernel's environment: the profile (both variables), no progress bars, inline figures."""
    return {**os.environ, "POISONLAB_PROFILE": profile, "QUARTO_PROFILE": profile, "TQDM_DISABLE": "1",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline"}


def first_line(source: str) -> str:
    line = next((s.strip() for s in source.split("\n") if s.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def traceback_places(traceback: list[str]) -> tuple[int | None, str | None]:
    """From a kernel traceback: the failing line within the cell, and the deepest frame of the
    project's own code (a file outside Python's libraries and outside this package)."""
    import sysconfig

    text = ANSI.sub("", "\n".join(traceback))
    cell = re.search(r"^Cell In\[\d+\], line (\d+)", text, re.M)
    libraries = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    libraries.add(Path(__file__).resolve().parent)
    frames = re.findall(r"^File (.+?):(\d+)(?:, in |$)", text, re.M)
    ours = []
    for f, n in frames:
        path = Path(os.path.expanduser(f)).resolve()
        if path.is_file() and not any(path.is_relative_to(lib) for lib in libraries):
            ours.append(f"{display_path(path)}:{n}")
    return (int(cell.group(1)) if cell else None), (ours[-1] if ours else None)


def cell_error(nb, chapter_path: Path, fallback: str) -> RenderError:
    """The RenderError of the first cell holding an error output: chapter, cell, line, error."""
    for cell in nb.cells:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        meta = cell.metadata.get("bookrender", {})
        if not errors or "raises-exception" in cell.metadata.get("tags", []):
            continue
        error = f"{errors[0].ename}: {errors[0].evalue}".rstrip(": ")
        offset, package_frame = traceback_places(errors[0].get("traceback", []))
        if package_frame:
            error += f" (at {package_frame})"
        if meta.get("role") == "inline":
            return RenderError(f"{meta['where']}: inline expression `{{python}} {meta['expr']}` raised {error}")
        if meta.get("role") == "setup":
            return RenderError(f"{display_path(chapter_path)}: the engine's setup cell raised {error}")
        file, line = meta["where"].rsplit(":", 1)
        line, source = int(line), cell.source.split("\n")
        if offset and 1 <= offset <= len(source):  # the failing statement, not only the cell's first line
            line, statement = line + offset - 1, source[offset - 1].strip()
        else:
            statement = first_line(cell.source)
        statement = statement if len(statement) <= 60 else statement[:57] + "..."
        return RenderError(f"{file}:{line}: cell {meta['cell']} ({statement!r}) raised {error}")
    return RenderError(f"{display_path(chapter_path)}: {fallback}")


def run_notebook(nb, cwd: Path, profile: str, timeout: float, chapter_path: Path):
    """Execute `nb` in a fresh python3 kernel started in `cwd`; a failing cell raises RenderError."""
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            extra_arguments=quiet_kernel_arguments(),
                            resources={"metadata": {"path": str(cwd)}})
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # the kernel process's own stderr (its log, C libraries) is kept aside: shown only if it dies
    log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
    try:
        try:
            client.execute(env=kernel_env(profile), stderr=log)
        except BaseException:
            # Ctrl-C or SIGTERM: nbclient's own handler shut the kernel down, and what surfaces is its
            # cleanup's error; say what happened
            if getattr(client, "_async_cleanup_kernel_future", None) is not None:
                raise KeyboardInterrupt from None
            raise
        finally:
            for sig, handler in handlers.items():  # nbclient leaves the defaults, not the caller's handlers
                if handler is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(sig, handler)
    except CellTimeoutError:
        running = next((c for c in nb.cells if c.cell_type == "code" and c.get("execution_count") is None
                        and "skip-execution" not in c.metadata.get("tags", [])), None)
        meta = running.metadata.get("bookrender", {}) if running is not None else {}
        raise RenderError(f"{meta.get('where', display_path(chapter_path))}: cell {meta.get('cell', '?')} "
                          f"ran past the timeout of {timeout:g} s per cell") from None
    except CellExecutionError as e:
        raise cell_error(nb, chapter_path, f"{e.ename}: {e.evalue}") from None
    except DeadKernelError as e:
        log.seek(0)
        tail = [line for line in log.read().splitlines() if line.strip()][-5:]
        raise RenderError(f"{display_path(chapter_path)}: the kernel died ({e})"
                          + ("; its last words:\n" + "\n".join(tail) if tail else "")) from None
    except NoSuchKernel:
        raise RenderError("no Jupyter kernel named python3: run `python -m ipykernel install --user` "
                          "in this environment") from None
    except RuntimeError as e:  # the kernel did not start (jupyter_client's "Kernel died before replying")
        raise RenderError(f"{display_path(chapter_path)}: the python3 kernel did not start ({e})") from None
    finally:
        log.close()
    return nb


def quiet_kernel_arguments() -> list[str]:
    """The kernel's own log (its warning about unencrypted local TCP) is not the chapter's output.

    `make install` puts the flag in the kernelspec already (`bookrender.kernelspec`); given twice,
    ipykernel refuses to start.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from .kernelspec import FLAG

    try:
        argv = KernelSpecManager().get_kernel_spec("python3").argv
    except NoSuchKernel:
        return []
    return [] if any(a.startswith("--IPKernelApp.log_level") for a in argv) else [FLAG]


def markdown_of_value(bundle: dict) -> str:
    """The markdown Quarto makes of an inline value's MIME bundle (its jupyter-inline.ts rules).

    text/markdown as it is; text/plain as it is, unless it is a quoted string (the repr of a
    `str`), which is unquoted and markdown-escaped: use `book.fmt` for numbers.
    """
    if "text/markdown" in bundle:
        return "".join(bundle["text/markdown"])
    text = "".join(bundle.get("text/plain", ""))
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return re.sub(r"([\\`*_{}\[\]()>#+,\-.!])", r"\\\1", text[1:-1].replace("\\", "\\\\"))
    return text


def inline_value(cell) -> str:
    """The markdown of an inline-expression cell's value, as Quarto makes it."""
    for output in cell.get("outputs", []):
        bundle = output.get("data", {}).get(INLINE_MIME)
        if bundle:
            return markdown_of_value(bundle)
    raise RenderError(f"inline expression `{{python}} {cell.metadata['bookrender']['expr']}` gave no value")
