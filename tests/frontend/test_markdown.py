"""static/js/markdown.js in a real Chromium: rendering, sanitizing, math, copy, streaming."""

from __future__ import annotations

import base64

import pytest

from tests.frontend.conftest import markdown_harness

pytestmark = pytest.mark.browser


def render(page, text: str) -> str:
    """Render `text` into #out (attached to the document, so handlers would run) and return its HTML."""
    return page.evaluate(
        "text => { const out = document.getElementById('out'); WebuiMarkdown.renderInto(out, text);"
        " return out.innerHTML; }",
        text,
    )


def query_count(page, selector: str) -> int:
    return page.evaluate("s => document.querySelectorAll(s).length", selector)


# -- rendering --------------------------------------------------------------------------------
def test_it_renders_fenced_code_as_highlighted_block_with_label_and_copy_button(md_page):
    render(md_page, "Intro\n\n```python\ndef hello():\n    return 'hi'\n```\n")

    block = md_page.locator("#out .code-block")
    assert block.get_attribute("data-lang") == "python"
    assert block.locator(".code-header .code-lang").inner_text() == "python"
    copy = block.locator("button.code-copy")
    assert copy.get_attribute("type") == "button"
    assert copy.inner_text() == "Copy"
    code = block.locator("pre > code.language-python")
    assert code.inner_text() == "def hello():\n    return 'hi'"
    assert code.locator("span.hljs-keyword").first.inner_text() == "def"
    assert md_page.errors == []


def test_it_auto_highlights_small_unlabelled_code_and_leaves_huge_blocks_plain(md_page):
    render(md_page, "```\nSELECT name FROM users WHERE id = 1;\n```\n")
    assert query_count(md_page, "#out pre code.hljs span") > 0

    huge = "x = 1\n" * 2000  # 12,000 characters: past the auto-detection limit
    render(md_page, f"```\n{huge}```\n")
    assert query_count(md_page, "#out pre code span") == 0
    assert md_page.locator("#out .code-lang").inner_text() == "text"


def test_it_renders_tables_in_a_scrolling_wrapper(md_page):
    render(md_page, "| Name | Size |\n|---|--:|\n| llama3.2 | 2.0 GB |\n| qwen2.5 | 4.7 GB |\n")

    assert md_page.locator("#out .table-scroll > table th").all_inner_texts() == ["Name", "Size"]
    assert md_page.locator("#out .table-scroll td").all_inner_texts() == [
        "llama3.2",
        "2.0 GB",
        "qwen2.5",
        "4.7 GB",
    ]


def test_it_renders_lists_task_lists_and_quotes(md_page):
    render(md_page, "- one\n- two\n\n1. first\n2. second\n\n- [x] done\n- [ ] todo\n\n> quoted\n")

    assert md_page.locator("#out ul:first-of-type > li").all_inner_texts()[:2] == ["one", "two"]
    assert md_page.locator("#out ol > li").all_inner_texts() == ["first", "second"]
    boxes = md_page.locator("#out li.task-list-item input[type=checkbox][disabled]")
    assert boxes.count() == 2
    assert boxes.nth(0).is_checked() and not boxes.nth(1).is_checked()
    assert md_page.locator("#out blockquote").inner_text() == "quoted"


def test_it_opens_links_outside_the_app_without_referrer(md_page):
    render(md_page, "See [the docs](https://ollama.com/docs) or https://example.com/x, main.py, a@b.org")

    links = md_page.locator("#out a")
    assert links.evaluate_all("as => as.map(a => a.getAttribute('href'))") == [
        "https://ollama.com/docs",
        "https://example.com/x",
        "mailto:a@b.org",
    ]
    first = links.nth(0)
    assert first.get_attribute("target") == "_blank"
    assert first.get_attribute("rel") == "noopener noreferrer nofollow"
    assert "main.py" in md_page.locator("#out").inner_text()  # a file name, not a link to .py


def test_it_shows_remote_images_as_links_and_inline_data_images_as_images(md_page):
    pixel = base64.b64encode(
        bytes.fromhex(
            "47494638396101000100800000ffffff00000021f90401000000002c00000000010001000002024401003b"
        )
    )
    render(
        md_page,
        f"![tracker](https://tracker.example/p.gif)\n\n![dot](data:image/gif;base64,{pixel.decode()})",
    )

    assert query_count(md_page, "#out img[src^='https:']") == 0
    link = md_page.locator("#out a.md-image-link")
    assert link.get_attribute("href") == "https://tracker.example/p.gif"
    assert "tracker" in link.inner_text()
    assert query_count(md_page, "#out img[src^='data:image/gif']") == 1


def test_it_renders_math_and_leaves_prices_alone(md_page):
    render(md_page, "Inline $x^2 + y^2$ and \\(a+b\\).\n\n$$\n\\frac{1}{2}\n$$\n\nIt costs $5 and $6.")

    assert query_count(md_page, "#out p:first-child .katex") == 2
    assert query_count(md_page, "#out .math-display .katex-display") == 1
    assert md_page.locator("#out p").last.inner_text() == "It costs $5 and $6."
    assert query_count(md_page, "#out p:last-child .katex") == 0


def test_it_keeps_katex_mathml_for_screen_readers(md_page):
    render(md_page, "$E = mc^2$")

    assert md_page.locator("#out .katex-mathml math semantics annotation").text_content() == "E = mc^2"


def test_it_shows_raw_html_from_the_model_as_text(md_page):
    render(md_page, "Use <b>bold</b> & <kbd>Ctrl</kbd>")

    assert md_page.locator("#out p").inner_text() == "Use <b>bold</b> & <kbd>Ctrl</kbd>"
    assert query_count(md_page, "#out b, #out kbd") == 0


# -- XSS ----------------------------------------------------------------------------------------
BIG = "A" * 100_000
XSS_PAYLOADS = [
    "<script>window.__xss = 1</script>",
    '<img src=x onerror="window.__xss = 1">',
    "[x](javascript:window.__xss=1)",
    "[x](JaVaScRiPt:window.__xss=1)",
    "[x](  javascript:window.__xss=1)",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9MTwvc2NyaXB0Pg==)",
    "[x](data:image/png;base64,iVBORw0KGgo=)",
    "<javascript:window.__xss=1>",
    '<svg onload="window.__xss = 1"><circle r=1 /></svg>',
    '<a href="jav&#x09;ascript:window.__xss=1">x</a>',
    "[x](jav&#x09;ascript:window.__xss=1)",
    "[x](jav%09ascript:window.__xss=1)",
    "![x](javascript:window.__xss=1)",
    '![x](x" onerror="window.__xss=1)',
    '<iframe src="javascript:window.__xss=1"></iframe>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    "&#60;script&#62;window.__xss = 1&#60;/script&#62;",
    "&lt;img src=x onerror=window.__xss=1&gt;",
    '<form action="javascript:window.__xss=1">'
    '<button formaction="javascript:window.__xss=1">go</button></form>',
    '<style>body { background: url("javascript:window.__xss=1") }</style>',
    '[x](https://a.example "title\\" onmouseover=\\"window.__xss=1")',
    '```js" onmouseover="window.__xss=1\ncode\n```',
    "$\\href{javascript:window.__xss=1}{click}$",
    "$\\htmlData{onload=window.__xss=1}{x}$",
    "$\\includegraphics{https://tracker.example/p.png}$",
    '<img src="x" alt="' + BIG + '" onerror="window.__xss = 1">',
    "![" + BIG + "](x)",
    "[" + BIG + "](javascript:window.__xss=1)",
]


@pytest.mark.parametrize("payload", XSS_PAYLOADS, ids=[p[:40] for p in XSS_PAYLOADS])
def test_it_makes_xss_payloads_inert(md_page, payload):
    render(md_page, payload)
    # Give image errors, loads and handlers a chance to fire: the flag must stay unset.
    md_page.evaluate("() => new Promise(resolve => requestAnimationFrame(() => setTimeout(resolve, 150)))")

    report = md_page.evaluate(
        """() => {
          const out = document.getElementById('out');
          const all = [...out.querySelectorAll('*')];
          return {
            xss: window.__xss === undefined ? null : window.__xss,
            scripts: out.querySelectorAll(
              'script, iframe, object, embed, style, form, svg, math:not(.katex-mathml math)').length,
            handlers: all.flatMap(el => [...el.attributes].map(a => a.name)).filter(n => n.startsWith('on')),
            badUrls: all.flatMap(el => ['href', 'src', 'action', 'formaction', 'xlink:href']
              .map(n => el.getAttribute(n)).filter(Boolean))
              .filter(u => !/^(https?:|mailto:|#|data:image\\/(png|gif|jpeg|webp);)/i.test(u.trim())
                           && /^[^/?#]*:/.test(u.trim())),
            remoteImages: out.querySelectorAll('img:not([src^="data:image/"])').length,
            textLength: out.textContent.length,
          };
        }"""
    )
    assert report["xss"] is None
    assert report["scripts"] == 0
    assert report["handlers"] == []
    assert report["badUrls"] == []
    assert report["remoteImages"] == 0
    assert md_page.errors == []


def test_it_keeps_dangerous_text_visible_as_text(md_page):
    render(md_page, "<script>alert(1)</script> &#60;b&#62;")

    assert md_page.locator("#out").inner_text() == "<script>alert(1)</script> <b>"


# -- copy ---------------------------------------------------------------------------------------
def test_it_copies_code_with_the_textarea_fallback_on_plain_http(fresh_md_page):
    assert fresh_md_page.evaluate("window.isSecureContext") is False  # like an intranet on http
    render(fresh_md_page, "```sh\nollama pull llama3.2\n```")
    fresh_md_page.evaluate(
        """() => { document.execCommand = command => {
             window.__copied = command === 'copy' ? document.activeElement.value : null; return true; }; }"""
    )

    fresh_md_page.locator(".code-copy").click()

    assert fresh_md_page.evaluate("window.__copied") == "ollama pull llama3.2"
    assert fresh_md_page.locator(".code-copy").inner_text() == "Copied"
    assert query_count(fresh_md_page, "textarea") == 0  # the helper textarea is gone again


def test_it_copies_code_with_the_clipboard_api_on_secure_origins(fresh_md_page):
    render(fresh_md_page, "```\nmake run\n```")
    fresh_md_page.evaluate(
        """() => {
          Object.defineProperty(window, 'isSecureContext', {value: true});
          Object.defineProperty(navigator, 'clipboard',
            {value: {writeText: async text => { window.__copied = text; }}});
        }"""
    )

    fresh_md_page.locator(".code-copy").click()

    fresh_md_page.wait_for_function("() => window.__copied === 'make run'")
    fresh_md_page.wait_for_function("() => document.querySelector('.code-copy').textContent === 'Copied'")


# -- server-rendered messages ---------------------------------------------------------------------
def test_it_enhances_server_rendered_messages_once(open_page):
    page = open_page(
        markdown_harness(
            '<div class="md" id="a" data-md>\n**bold** &lt;b&gt;x&lt;/b&gt;\n\n    not code</div>'
            '<div class="md" id="b" data-md data-md-done><p>already</p></div>'
        )
    )

    assert page.evaluate("WebuiMarkdown.enhanceAll(document)") == 1
    assert page.locator("#a strong").inner_text() == "bold"
    assert "<b>x</b>" in page.locator("#a").inner_text()
    assert page.locator("#a").get_attribute("data-md-done") == ""
    assert page.locator("#b").inner_html() == "<p>already</p>"
    assert page.evaluate("WebuiMarkdown.enhanceAll(document)") == 0


# -- streaming ----------------------------------------------------------------------------------
MAKE_REPLY = """
count => {
  const parts = [
    'Here is a paragraph with **bold** text, `code`, and a [link](https://example.com). ',
    'It keeps going for a while so the paragraph has a realistic length. $x^2$ appears too.\\n\\n',
    '## A heading\\n\\n',
    '- first item\\n- second item\\n- third item\\n\\n',
    '```python\\ndef f(x):\\n    return x * 2\\n```\\n\\n',
    '| a | b |\\n|---|---|\\n| 1 | 2 |\\n\\n',
  ];
  const tokens = [];
  let i = 0;
  while (tokens.length < count) {
    for (const piece of parts[i++ % parts.length].match(/\\s*\\S+|\\s+/g)) tokens.push(piece);
  }
  return tokens.slice(0, count);
}
"""


def test_it_streams_into_stable_blocks_that_are_never_replaced(fresh_md_page):
    result = fresh_md_page.evaluate(
        f"""() => {{
          const tokens = ({MAKE_REPLY})(20000);
          const out = document.getElementById('out');
          const stream = WebuiMarkdown.createStream(out);
          const half = tokens.length / 2;
          // A frame every 7 tokens: about what 400 tokens/s at 60 frames/s gives.
          const feed = slice => slice.forEach((t, i) => {{
            stream.append(t);
            if (i % 7 === 6) stream.flush();
          }});
          feed(tokens.slice(0, half));
          stream.flush();
          const early = [...out.children].filter(el => el.classList.contains('md-block'));
          const earlyHtml = early.map(el => el.innerHTML);
          feed(tokens.slice(half));
          stream.flush();
          const late = [...out.children];
          return {{
            earlyCount: early.length,
            sameNodes: early.every((el, i) => late[i] === el && el.isConnected),
            sameHtml: early.every((el, i) => el.innerHTML === earlyHtml[i]),
            tailIsLast: late[late.length - 1].classList.contains('md-tail'),
            blocks: late.length - 1,
            text: stream.text() === tokens.join(''),
            stats: stream.stats,
          }};
        }}"""
    )
    assert result["earlyCount"] > 100
    assert result["sameNodes"] and result["sameHtml"]
    assert result["tailIsLast"]
    assert result["blocks"] > result["earlyCount"]
    assert result["text"]
    stats = result["stats"]
    assert stats["appends"] == 20000
    # Each render of the tail covers one block, not the reply: on average a few hundred characters.
    assert stats["tailChars"] / stats["tailRenders"] < 400


def test_it_lays_out_a_huge_unbroken_word_quickly_and_copies_it_whole(md_page):
    blob = "QUJD" * 25_000  # 100 KB of base64, no spaces: pasted by users, printed by models
    elapsed = md_page.evaluate(
        """text => {
          const out = document.getElementById('out');
          const start = performance.now();
          WebuiMarkdown.renderInto(out, text);
          out.getBoundingClientRect();  // force the layout
          return performance.now() - start;
        }""",
        blob,
    )
    assert elapsed < 1500
    assert md_page.evaluate("document.querySelector('#out p').textContent") == blob
    assert query_count(md_page, "#out p wbr") > 1000


def test_it_keeps_the_cost_of_an_append_flat_as_the_reply_grows(fresh_md_page):
    timings = fresh_md_page.evaluate(
        f"""() => {{
          const tokens = ({MAKE_REPLY})(20000);
          const warm = WebuiMarkdown.createStream(document.createElement('div'));
          tokens.slice(0, 1000).forEach(t => {{ warm.append(t); warm.flush(); }});
          const out = document.getElementById('out');
          const stream = WebuiMarkdown.createStream(out);
          // Worst case in the measured windows: a render after every single token.
          const run = slice => {{
            const start = performance.now();
            slice.forEach(t => {{ stream.append(t); stream.flush(); }});
            return performance.now() - start;
          }};
          const first = run(tokens.slice(0, 1000));
          tokens.slice(1000, 19000).forEach((t, i) => {{
            stream.append(t);
            if (i % 50 === 49) stream.flush();
          }});
          const last = run(tokens.slice(19000));
          return {{first, last}};
        }}"""
    )
    assert timings["last"] < 3 * max(timings["first"], 5.0), timings


def test_it_coalesces_many_appends_into_one_render_per_frame(fresh_md_page):
    renders = fresh_md_page.evaluate(
        """async () => {
          const stream = WebuiMarkdown.createStream(document.getElementById('out'));
          for (let i = 0; i < 500; i++) stream.append('word ');
          const before = stream.stats.tailRenders;
          await new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(resolve)));
          return {before, after: stream.stats.tailRenders,
                  text: document.getElementById('out').textContent.trim().length};
        }"""
    )
    assert renders["before"] == 0
    assert renders["after"] == 1
    assert renders["text"] == len("word " * 500) - 1


def test_it_renders_an_unclosed_fence_as_code_while_streaming(fresh_md_page):
    state = fresh_md_page.evaluate(
        """() => {
          const out = document.getElementById('out');
          const stream = WebuiMarkdown.createStream(out);
          stream.append("Here you go:\\n\\n```python\\nfor i in range(3):\\n    print(i)\\n``");
          stream.flush();
          const code = out.querySelector('.md-tail .code-block pre code');
          return {code: code && code.textContent, label: out.querySelector('.md-tail .code-lang').textContent,
                  paragraph: out.querySelector('.md-block p').textContent};
        }"""
    )
    assert state == {
        "code": "for i in range(3):\n    print(i)",
        "label": "python",
        "paragraph": "Here you go:",
    }


def test_it_shows_unclosed_display_math_as_pending_source_while_streaming(fresh_md_page):
    pending = fresh_md_page.evaluate(
        """() => {
          const out = document.getElementById('out');
          const stream = WebuiMarkdown.createStream(out);
          stream.append('Formula:\\n\\n$$\\n\\\\frac{a}{');
          stream.flush();
          return out.querySelector('.math-pending') !== null && out.querySelector('.katex-error') === null;
        }"""
    )
    assert pending


def test_it_finishes_with_one_full_render_including_highlighting(fresh_md_page):
    final = fresh_md_page.evaluate(
        """() => {
          const out = document.getElementById('out');
          const stream = WebuiMarkdown.createStream(out);
          const text = '1. one\\n\\n2. two\\n\\n```js\\nconst a = 1;\\n```\\n\\nDone [ref].\\n\\n[ref]: https://example.com';
          for (const ch of text) { stream.append(ch); stream.flush(); }
          stream.finish();
          stream.append('ignored after finish');
          return {
            html: out.innerHTML,
            expected: WebuiMarkdown.render(text).length > 0,
            tail: out.querySelector('.md-tail, .md-block') === null,
            items: out.querySelectorAll('ol > li').length,
            lists: out.querySelectorAll('ol').length,
            highlighted: out.querySelector('code.hljs .hljs-keyword') !== null,
            link: out.querySelector('a[href="https://example.com/"], a[href="https://example.com"]') !== null,
            done: out.hasAttribute('data-md-done') && !out.hasAttribute('data-md-streaming'),
          };
        }"""
    )
    assert final["tail"]
    assert final["items"] == 2 and final["lists"] == 1
    assert final["highlighted"] and final["link"] and final["done"]
    assert "ignored" not in final["html"]


def test_it_resets_a_stream_to_the_text_so_far(fresh_md_page):
    text = fresh_md_page.evaluate(
        """() => {
          const out = document.getElementById('out');
          const stream = WebuiMarkdown.createStream(out);
          stream.append('old text that will go');
          stream.flush();
          stream.reset('Resumed **reply**\\n\\nand more');
          return {text: out.textContent, strong: out.querySelector('strong').textContent,
                  kept: stream.text()};
        }"""
    )
    assert "old text" not in text["text"]
    assert text["strong"] == "reply"
    assert text["kept"] == "Resumed **reply**\n\nand more"


def test_it_loads_nothing_from_outside_the_app(fresh_md_page, site):
    render(fresh_md_page, "$x$ ![a](https://cdn.example/a.png) ```x```")
    fresh_md_page.evaluate("() => new Promise(resolve => setTimeout(resolve, 100))")

    assert site.foreign_requests == []
    assert site.missing == []
