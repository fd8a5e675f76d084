"""The payload catalogue, in every place text from users or from Ollama reaches a page.

Places: model output (streamed and from history), user messages, conversation titles (set by
hand and generated), model names, modelfiles (system, template, license, parameters),
Ollama's error texts (chat, stream, pull, copy, listing), user names (SSO accepts any) and
server names. Each page is checked in Chromium with the Content-Security-Policy turned OFF,
so that escaping and sanitizing alone must keep every payload inert: nothing executes, no
dialog opens, and the DOM holds no handler, script URL, foreign script or frame.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from chat.models import Conversation, Message
from models_admin.models import OllamaServer
from tests.conftest import make_user
from tests.ollama_double import make_model_record
from tests.security.browser import markdown_settled, watched_page

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

RUN = "window.__xss=1"
CATALOGUE = [
    # script tags and event handlers
    f"<script>{RUN}</script>",
    f'<img src=x onerror="{RUN}">',
    f"<svg onload={RUN}>",
    f"<body onload={RUN}>",
    f"<details open ontoggle={RUN}>x</details>",
    f"<input autofocus onfocus={RUN}>",
    f"<video><source onerror={RUN}></video>",
    # breaking out of the element or attribute the text lands in
    f'"><img src=x onerror={RUN}>',
    f"'><img src=x onerror={RUN}>",
    f"</textarea><img src=x onerror={RUN}>",
    f"</title><img src=x onerror={RUN}>",
    f"</template><img src=x onerror={RUN}>",
    f"</script><script>{RUN}</script>",
    f"</option></select><img src=x onerror={RUN}>",
    f"{{{{ {RUN} }}}} {{% csrf_token %}}",
    # javascript: and data: URLs, raw and in markdown
    f'<a href="javascript:{RUN}">raw js link</a>',
    f"[js link](javascript:{RUN})",
    f"[js link](JaVaScRiPt:{RUN})",
    f"[js link](  javascript:{RUN})",
    f"[js link](jav&#x09;ascript:{RUN})",
    f"[js link](&#106;avascript:{RUN})",
    f"[js link](jav%09ascript:{RUN})",
    "[vb link](vbscript:msgbox(1))",
    "[data link](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9MTwvc2NyaXB0Pg==)",
    f"<javascript:{RUN}>",
    f"[ref link][r]\n\n[r]: javascript:{RUN}",
    # markdown image and link tricks
    f"![img](javascript:{RUN})",
    f'![img](x" onerror="{RUN})',
    "![svg](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9ImFsZXJ0KDEpIi8+)",
    f"[<img src=x onerror={RUN}>](https://example.com)",
    f'[title](https://example.com "a\\" onmouseover=\\"{RUN}")',
    f'```js" onmouseover="{RUN}\ncode\n```',
    # SVG and MathML
    f"<svg><script>{RUN}</script></svg>",
    f'<svg><a xlink:href="javascript:{RUN}"><text y="20">svg link</text></a></svg>',
    f"<math><mtext><table><mglyph><style><img src=x onerror={RUN}>",
    f"$\\href{{javascript:{RUN}}}{{math link}}$",
    "$$\\htmlData{onload=window.__xss=1}{x}$$",
    # entities
    f"&lt;script&gt;{RUN}&lt;/script&gt;",
    f"&#60;img src=x onerror={RUN}&#62;",
    f"\\u003cimg src=x onerror={RUN}\\u003e",
    # very long attributes
    f'<img src=x alt="{"A" * 5000}" onerror="{RUN}">',
    f"[{'B' * 5000}](javascript:{RUN})",
    # htmx: attributes the markup would obey if they survived
    f'<div hx-on:click="{RUN}" data-hx-get="/users/" data-hx-trigger="load">htmx</div>',
    f'<style>body {{ background: url("javascript:{RUN}") }}</style>',
]
TEXT = "\n\n".join(CATALOGUE)
SHORT = [payload for payload in CATALOGUE if len(payload) <= 150]  # for 150/200-character fields


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def open_chat(browser, server, user, path: str = "/"):
    watched = watched_page(browser, server, user, bypass_csp=True)
    watched.page.goto(server.url + path)
    watched.page.wait_for_selector('.chat-main[data-socket="open"]')
    markdown_settled(watched.page)
    return watched


def send(page, text: str) -> None:
    page.evaluate("(text) => { document.querySelector('#composer-input').value = text; }", text)
    page.press("#composer-input", "Enter")


def reply_finished(page, status: str = "complete") -> None:
    page.wait_for_selector(f'article.message-assistant[data-status="{status}"]', timeout=20_000)
    markdown_settled(page)


def test_it_keeps_model_output_and_user_messages_inert_live_and_from_history(browser, server, user):
    server.double.configure(reply=TEXT)  # the generated title comes from it too
    watched = open_chat(browser, server, user)
    send(watched.page, TEXT)
    reply_finished(watched.page)
    watched.assert_inert()
    assert "<script>window.__xss=1</script>" in watched.page.inner_text("article.message-user")  # shown
    watched.page.reload()
    watched.page.wait_for_selector('.chat-main[data-socket="open"]')
    markdown_settled(watched.page)
    watched.page.hover("article.message-assistant a >> nth=0")
    watched.assert_inert()
    watched.page.context.close()


def test_it_keeps_titles_inert_in_the_sidebar_header_tab_and_dialogs(browser, server, user):
    conversations = [
        Conversation.objects.create(owner=user, title=payload[:200], model="llama3.2:latest")
        for payload in SHORT
    ]
    for conversation in conversations:
        Message.objects.create(conversation=conversation, role="user", content="hi")
    watched = open_chat(browser, server, user, f"/c/{conversations[0].pk}/")
    page = watched.page
    assert page.title().startswith(SHORT[0][:20])  # the tab shows the text, nothing more
    page.fill("#conv-search", "img")  # htmx swaps search results in
    page.wait_for_selector(".conv-item")
    page.fill("#conv-search", "")
    page.wait_for_selector(f"#conv-{conversations[-1].pk}")
    page.wait_for_load_state("networkidle")  # the search's last swap is done
    newest = conversations[-1]
    page.hover(f"#conv-{newest.pk}")  # the actions appear on hover
    page.click(f"#conv-{newest.pk} summary")
    page.click(f"#conv-{newest.pk} .btn-danger")  # the delete confirmation quotes the title
    page.wait_for_selector("#webui-confirm[open]")
    assert newest.title[:20] in page.inner_text("#webui-confirm")
    page.keyboard.press("Escape")
    page.click("[data-open-dialog=settings-dialog]")
    watched.assert_inert()
    page.context.close()


def test_it_keeps_model_names_inert_in_pickers_errors_links_and_tables(browser, server, admin_user):
    double = server.double
    for payload in SHORT[:12]:
        with double._lock:  # a name Ollama would refuse; the page must not trust Ollama either
            double.models[payload] = make_model_record(payload)
    watched = open_chat(browser, server, admin_user)
    page = watched.page
    hostile = SHORT[1]
    page.evaluate(
        "(name) => { const o = new Option(name, name); document.querySelector('#model-picker').add(o);"
        " document.querySelector('#model-picker').value = name; }",
        hostile,
    )
    send(page, "which model?")
    reply_finished(page, "error")  # Ollama: model not found, naming it
    assert page.is_visible("article.message-assistant .message-error")
    watched.assert_inert()
    page.reload()  # the conversation's model in the picker, the error and pull link from history
    page.wait_for_selector('.chat-main[data-socket="open"]')
    links = page.locator("article.message-assistant .pull-link")
    assert links.count() == 0 or links.first.get_attribute("href").startswith("/models/?pull=")
    watched.assert_inert()
    page.goto(server.url + "/models/")
    page.wait_for_selector('#models-dashboard[data-socket="open"]')
    page.goto(server.url + "/models/?pull=" + quote(hostile))
    watched.assert_inert()
    page.context.close()


def test_it_keeps_modelfiles_inert_on_the_model_page(browser, server, admin_user):
    short = SHORT[0]
    server.double.add_model(
        "evil:latest",
        system=TEXT,
        template=TEXT,
        license=TEXT,
        family=short,
        parameter_size=short,
        quantization_level=short,
        capabilities=["completion", short],
        parameters={"stop": SHORT[:5]},
    )
    watched = watched_page(browser, server, admin_user, bypass_csp=True)
    watched.page.goto(server.url + "/models/evil:latest/")
    watched.page.click("text=Show the modelfile")
    assert "<script>window.__xss=1</script>" in watched.page.inner_text("[data-field=system]")
    watched.page.goto(server.url + "/models/?q=evil")
    watched.assert_inert()
    watched.page.context.close()


def test_it_keeps_ollamas_error_texts_inert_in_chat(browser, server, user):
    message = " ".join(SHORT)
    watched = open_chat(browser, server, user)
    for fault in (
        {"fail_status": 500, "fail_message": message},
        {"error_after": 2, "error_message": message},
    ):
        server.double.reset()
        server.double.configure(**fault)
        send(watched.page, "fail, please")
        watched.page.wait_for_selector(
            f'article.message-assistant[data-status="error"] >> nth={0 if "fail_status" in fault else 1}'
        )
    assert "<script>" in watched.page.inner_text("article.message-assistant .error-text >> nth=0")
    watched.assert_inert()
    watched.page.reload()
    watched.page.wait_for_selector('.chat-main[data-socket="open"]')
    watched.assert_inert()
    watched.page.context.close()


def test_it_keeps_ollamas_error_texts_inert_on_the_dashboard(browser, server, admin_user):
    message = " ".join(SHORT)
    server.double.configure(pull_fail_after=1, pull_fail_message=message, pull_seconds=0.2)
    watched = watched_page(browser, server, admin_user, bypass_csp=True)
    page = watched.page
    page.goto(server.url + "/models/")
    page.wait_for_selector('#models-dashboard[data-socket="open"]')
    page.fill("#pull-form input[name=model]", "qwen3:0.6b")
    page.click("#pull-form [type=submit]")  # live progress, then the failure, through models.js
    page.wait_for_selector("[data-operation-id][data-status=failed], .operation .badge-error", timeout=15_000)
    watched.assert_inert()
    page.reload()  # the history table, rendered by the server
    page.wait_for_selector('#models-dashboard[data-socket="open"]')
    watched.assert_inert()
    server.double.configure(fail_status=500, fail_message=message, fail_paths=["/api/chat"])
    page.evaluate(  # the plain "Unload" form (its button shows only for loaded models)
        """() => {
          const form = document.createElement("form");
          Object.assign(form, {method: "post", action: "/models/unload/"});
          for (const [name, value] of [["model", "llama3.2:latest"],
              ["csrfmiddlewaretoken", document.querySelector("meta[name=csrf-token]").content]]) {
            form.append(Object.assign(document.createElement("input"), {type: "hidden", name, value}));
          }
          document.body.append(form);
          form.submit();
        }"""
    )
    page.wait_for_selector(".flash-error")  # Ollama's answer, shown after the redirect
    assert "<script>" in page.inner_text(".flash-error")
    watched.assert_inert()
    page.context.close()


def test_it_keeps_user_and_server_names_inert(browser, server, admin_user):
    hostile = [make_user(payload[:150]) for payload in SHORT[:8]]
    hostile_admin = make_user("<img src=x onerror=window.__xss=1>", staff=True)
    for index, payload in enumerate(SHORT[:6]):
        OllamaServer.objects.create(name=payload[:100], base_url=f"http://127.0.0.1:9/{index}", enabled=False)
    watched = watched_page(browser, server, hostile_admin, bypass_csp=True)
    page = watched.page
    page.goto(server.url + "/users/")  # names in rows, buttons and confirmations
    page.click(f"form[action='/users/{hostile[0].pk}/deactivate/'] button")
    page.wait_for_selector("#webui-confirm[open]")
    page.keyboard.press("Escape")
    watched.assert_inert()
    page.goto(server.url + "/models/servers/")
    watched.assert_inert()
    page.goto(server.url + "/")  # the top bar names the signed-in user
    watched.assert_inert()
    page.context.close()
