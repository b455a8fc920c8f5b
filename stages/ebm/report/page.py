"""The report's page: one document written twice, as self-contained HTML and as Markdown."""

import base64
import html
import os
import re
from pathlib import Path

from ebm import paths
from ebm.report.outputs import fmt
from ebm.verdicts import AGREES, DISAGREES, NOT_AT_SCALE, NOT_RUN

OUT = paths.REPORT


WORD_CLASS = {AGREES: "agrees", DISAGREES: "disagrees", NOT_AT_SCALE: "scale", NOT_RUN: "notrun"}


def data_uri(path):
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def md_link(path):
    return Path(os.path.relpath(path, OUT)).as_posix()


def inline(text):
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


class Doc:
    """Appends every block to an HTML and a Markdown rendering at once, so the two stay twins."""

    def __init__(self, title):
        self.title, self.html, self.md = title, [], [f"# {title}", ""]

    def heading(self, level, text, anchor=None):
        anchor = anchor or re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        self.html.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
        self.md += [f"{'#' * level} {text}", ""]

    def para(self, text, quote=False):
        body = inline(text)
        self.html.append(f"<blockquote>{body}</blockquote>" if quote else f"<p>{body}</p>")
        self.md += [("> " if quote else "") + text, ""]

    def pre(self, lines):
        self.html.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
        self.md += ["```", *lines, "```", ""]

    def table(self, header, rows, table_id=None):
        attr = f' id="{table_id}"' if table_id else ""
        cells = lambda tag, row: "".join(f"<{tag}>{html.escape(fmt(c))}</{tag}>" for c in row)  # noqa: E731
        self.html.append(
            f"<table{attr}><thead><tr>{cells('th', header)}</tr></thead><tbody>"
            + "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
            + "</tbody></table>"
        )
        esc = lambda c: fmt(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
        self.md += [
            "| " + " | ".join(map(esc, header)) + " |",
            "|" + "---|" * len(header),
            *["| " + " | ".join(map(esc, r)) + " |" for r in rows],
            "",
        ]

    def image(self, path, alt):
        self.html.append(
            f'<figure><img src="{data_uri(path)}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(alt)} ({html.escape(str(path))})</figcaption></figure>"
        )
        self.md += [f"![{alt}]({md_link(path)})", ""]

    def cards(self, cards):
        """The first screen: cards side by side (a CSS grid) in HTML, one after another in Markdown.
        Each card: dict(title, anchor, images: [(path, caption)], missing (text when no image),
        verdict (Verdict), note); the first image is the card's picture, any other follows
        smaller."""
        out = ['<div class="cards">']
        for card in cards:
            verdict, images = card["verdict"], card["images"]
            picture = (
                "".join(
                    f'<img class="{"main" if i == 0 else "side"}" src="{data_uri(path)}" '
                    f'alt="{html.escape(caption)}"><p class="caption">{html.escape(caption)}</p>'
                    for i, (path, caption) in enumerate(images)
                )
                if images
                else f'<div class="noimg">{html.escape(card["missing"])}</div>'
            )
            caption = ""
            figures = "".join(f"<li>{html.escape(f)}</li>" for f in verdict.figures)
            why = "" if verdict.word == AGREES else verdict.short
            note = "".join(
                f'<p class="note">{html.escape(t)}</p>' for t in (why, card.get("note")) if t
            )
            if card.get("eye"):
                note += f'<p class="eye">{html.escape(card["eye"])}</p>'
            out.append(
                f'<div class="card"><h3><a '
                f'href="#{card["anchor"]}">{html.escape(card["title"])}</a></h3>'
                f"{picture}{caption}"
                f'<p class="word '
                f'{WORD_CLASS.get(verdict.word, "notrun")}">{html.escape(verdict.word)}</p>'
                f"<ul>{figures}</ul>{note}</div>"
            )
            self.md += [f"**{card['title']}**: {verdict.word}", ""]
            for path, text in images:
                self.md += [f"![{text}]({md_link(path)}) *{text}*", ""]
            if not images:
                self.md += [f"*{card['missing']}*", ""]
            self.md += [f"- {f}" for f in verdict.figures]
            texts = (why, card.get("note"), card.get("eye"))
            self.md += ([""] if verdict.figures else []) + [f"{t}\n" for t in texts if t]
        out.append("</div>")
        self.html.append("".join(out))

    def render(self):
        style = (
            "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 "
            "1em;line-height:1.4}"
            "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid "
            "#bbb;padding:.2em .5em;"
            "text-align:right;font-size:.9em}th{background:#eee}td:first-child{text-align:left}"
            "img{max-width:100%}figure{margin:.5em 0}figcaption{font-size:.8em;color:#555}"
            "blockquote{border-left:4px solid #ccc;margin:.5em 0;padding:.2em 1em;color:#333}"
            "pre{background:#f6f6f6;padding:.5em}#summary td,#rules "
            "td{text-align:left;vertical-align:top}"
            ".cards{display:flex;flex-wrap:wrap;gap:.6em;margin:.5em 0 1.5em}"
            ".card{flex:1 1 118px;min-width:118px;max-width:220px;box-sizing:border-box;border:1px "
            "solid #ccc;border-radius:6px;"
            "padding:.4em;font-size:.74em;background:#fafafa;break-inside:avoid}"
            ".card h3{font-size:1em;margin:0 0 .3em}.card h3 a{color:#222;text-decoration:none}"
            ".card img{width:100%;image-rendering:pixelated;display:block}.card img.side{width:60%}"
            ".card .noimg{aspect-ratio:1;box-sizing:border-box;background:#ddd;color:#555;"
            "display:flex;align-items:center;"
            "justify-content:center;text-align:center;padding:.3em}"
            ".card .caption{color:#666;margin:.2em 0}.card ul{margin:.2em 0;padding-left:1.1em}"
            ".card .note{color:#666;margin:.2em 0}"
            ".card .eye{color:#225;background:#eef;padding:.2em;margin:.2em 0}"
            ".word{font-weight:bold;margin:.2em 0;padding:.1em "
            ".4em;border-radius:3px;display:inline-block}"
            ".agrees{background:#d4f0d4;color:#1a5e1a}.disagrees{background:#f6d0d0;color:#8a1a1a}"
            ".scale{background:#fbe7c2;color:#7a4a00}.notrun{background:#e4e4e4;color:#555}"
        )
        page = (
            f'<!DOCTYPE html>\n<html lang="en"><head><meta '
            f'charset="utf-8"><title>{html.escape(self.title)}'
            f"</title><style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>\n"
            + "\n".join(self.html)
            + "\n</body></html>\n"
        )
        return page, "\n".join(self.md)
