/* The chat page: one websocket, streaming replies, composer, message actions.
 *
 * Frames are documented in docs/websocket.md. Offsets count Unicode code points (as
 * Python does), so text with emoji resumes at the right place.
 */
(function () {
  "use strict";

  const main = document.querySelector(".chat-main");
  if (!main) return;

  const strings = JSON.parse(document.getElementById("chat-strings").textContent);
  const messagesEl = document.getElementById("messages");
  const composer = document.getElementById("composer");
  const input = document.getElementById("composer-input");
  const sendButton = document.getElementById("send-button");
  const stopButton = document.getElementById("stop-button");
  const modelPicker = document.getElementById("model-picker");
  const jumpButton = document.getElementById("jump-latest");
  const announcer = document.getElementById("stream-announcer");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  let conversationId = main.dataset.conversation ? Number(main.dataset.conversation) : null;
  let socket = null;
  let retryDelay = 500;
  let pendingRef = null;
  let refCounter = 0;
  let followBottom = true;
  const replies = new Map(); // reply id -> state

  const cpLen = (text) => {
    let n = text.length;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0xd800 && code <= 0xdbff) n--;
    }
    return n;
  };
  const cpSlice = (text, start) => (start <= 0 ? text : Array.from(text).slice(start).join(""));

  function toast(message, kind) {
    if (window.webuiToast) window.webuiToast(message, kind || "info");
  }

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));
  }

  // -- replies ---------------------------------------------------------------------------
  function replyState(id, el) {
    let state = replies.get(id);
    if (state) return state;
    el = el || document.getElementById("m-" + id);
    if (!el) return null;
    const body = el.querySelector(".message-body .md");
    const thinkingBody = el.querySelector(".thinking-body");
    const raw = el.querySelector("template.raw");
    const rawThinking = el.querySelector("template.raw-thinking");
    const content = raw ? raw.content.textContent : "";
    state = {
      id, el, body, thinkingBody,
      content, thinking: rawThinking ? rawThinking.content.textContent : "",
      have: cpLen(content), haveThinking: 0, seq: 0,
      stream: null, thinkingStream: null, status: el.dataset.status,
    };
    state.haveThinking = cpLen(state.thinking);
    if (state.status === "streaming") startRendering(state);
    replies.set(id, state);
    return state;
  }

  function startRendering(state) {
    if (window.WebuiMarkdown && window.WebuiMarkdown.createStream) {
      state.body.removeAttribute("data-md");
      state.stream = window.WebuiMarkdown.createStream(state.body);
      state.stream.reset(state.content);
      if (state.thinkingBody) {
        state.thinkingBody.removeAttribute("data-md");
        state.thinkingStream = window.WebuiMarkdown.createStream(state.thinkingBody);
        state.thinkingStream.reset(state.thinking);
      }
    }
  }

  function appendText(state, offset, text, which) {
    const haveKey = which === "thinking" ? "haveThinking" : "have";
    const have = state[haveKey];
    if (offset > have) return false; // a gap: the caller resubscribes
    const fresh = cpSlice(text, have - offset);
    if (!fresh) return true;
    state[haveKey] = have + cpLen(fresh);
    if (which === "thinking") {
      state.thinking += fresh;
      const details = state.el.querySelector(".thinking");
      if (details) details.hidden = false;
      if (state.thinkingStream) state.thinkingStream.append(fresh);
      else state.thinkingBody.textContent = state.thinking;
    } else {
      state.content += fresh;
      if (state.stream) state.stream.append(fresh);
      else state.body.textContent = state.content;
    }
    return true;
  }

  function setStatusText(state, name) {
    const line = state.el.querySelector(".message-status");
    if (!line) return;
    const text = strings[name];
    line.hidden = !text;
    if (text) line.querySelector(".status-text").textContent = text;
    state.el.dataset.state = name;
  }

  function applyDelta(frame) {
    const state = replyState(frame.reply);
    if (!state) return;
    if (frame.seq && frame.seq <= state.seq && frame.type === "delta") return; // duplicate
    let ok = true;
    if (frame.t !== undefined) ok = appendText(state, frame.to || 0, frame.t, "thinking") && ok;
    if (frame.c !== undefined) ok = appendText(state, frame.o || 0, frame.c, "content") && ok;
    if (!ok) {
      resubscribe();
      return;
    }
    if (frame.seq) state.seq = Math.max(state.seq, frame.seq);
    if (frame.type === "snapshot") {
      if (frame.status) finish(state, frame);
      else if (frame.state) setStatusText(state, frame.state);
    } else if (frame.c) {
      setStatusText(state, "streaming");
    }
    scrollIfFollowing();
  }

  function finish(state, frame) {
    state.status = frame.status;
    state.el.dataset.status = frame.status;
    state.el.classList.remove("streaming");
    setStatusText(state, "");
    if (state.stream) state.stream.finish();
    if (state.thinkingStream) state.thinkingStream.finish();
    const raw = state.el.querySelector("template.raw");
    if (raw) raw.content.textContent = state.content;
    const rawThinking = state.el.querySelector("template.raw-thinking");
    if (rawThinking) rawThinking.content.textContent = state.thinking;
    const errorBox = state.el.querySelector(".message-error");
    if (frame.status === "error" || frame.status === "interrupted") {
      errorBox.hidden = false;
      errorBox.querySelector(".error-text").textContent =
        frame.status === "interrupted" && !frame.error ? strings.interrupted : frame.error;
      if (frame.error_kind === "model_not_found") showPullHint(errorBox, state);
    }
    if (frame.status === "stopped") state.el.querySelector(".message-stopped").hidden = false;
    const meta = state.el.querySelector(".message-meta");
    if (meta && frame.eval_count) meta.textContent = statsText(frame);
    const details = state.el.querySelector(".thinking");
    if (details && !state.thinking) details.hidden = true;
    replies.delete(state.id);
    announcer.textContent = frame.status === "complete" ? strings.done : "";
    updateComposer();
  }

  function showPullHint(errorBox, state) {
    if (errorBox.querySelector(".pull-link, .pull-hint")) return;
    const hint = document.createElement(main.dataset.isStaff === "1" ? "a" : "span");
    if (main.dataset.isStaff === "1") {
      hint.className = "pull-link";
      hint.href = main.dataset.pullUrl + "?pull=" + encodeURIComponent(state.el.dataset.model || modelPicker.value);
      hint.textContent = strings.pull_model;
    } else {
      hint.className = "pull-hint muted";
      hint.textContent = strings.ask_admin;
    }
    errorBox.insertBefore(hint, errorBox.querySelector("[data-action=retry]"));
  }

  function statsText(frame) {
    const parts = [];
    const number = (value, digits) =>
      Number(value).toLocaleString(document.documentElement.lang, {
        maximumFractionDigits: digits, minimumFractionDigits: digits,
      });
    if (frame.eval_count) parts.push(format(strings.tokens, { count: number(frame.eval_count, 0) }));
    if (frame.eval_count && frame.eval_duration)
      parts.push(format(strings.rate, { rate: number((frame.eval_count / frame.eval_duration) * 1e9, 1) }));
    if (frame.total_duration) parts.push(format(strings.seconds, { seconds: number(frame.total_duration / 1e9, 1) }));
    return parts.join(" · ");
  }

  function streamingHere() {
    return Array.from(replies.values()).filter((state) => state.status === "streaming");
  }

  function updateComposer() {
    const busy = streamingHere().length > 0;
    stopButton.hidden = !busy;
    sendButton.hidden = busy;
    input.disabled = busy || pendingRef !== null;
    sendButton.disabled = pendingRef !== null;
    if (!busy && pendingRef === null && document.activeElement === document.body) input.focus();
  }

  // -- messages --------------------------------------------------------------------------
  function cloneTemplate(id, message) {
    const fragment = document.getElementById(id).content.cloneNode(true);
    const el = fragment.querySelector("article");
    el.id = "m-" + message.id;
    el.dataset.id = message.id;
    el.dataset.status = message.status;
    el.dataset.model = message.model || "";
    const body = el.querySelector(".message-body .md");
    body.textContent = message.content || "";
    el.querySelector("template.raw").content.textContent = message.content || "";
    return el;
  }

  function addMessage(message) {
    let el = document.getElementById("m-" + message.id);
    if (el) return el;
    const empty = document.getElementById("chat-empty");
    if (empty) empty.remove();
    el = cloneTemplate(message.role === "user" ? "tpl-user" : "tpl-reply", message);
    messagesEl.appendChild(el);
    const body = el.querySelector(".message-body .md");
    if (message.role === "user" && window.WebuiMarkdown) {
      body.removeAttribute("data-md");
      window.WebuiMarkdown.renderInto(body, message.content);
    }
    if (message.role === "assistant") {
      const state = replyState(message.id, el);
      if (message.status === "streaming") setStatusText(state, "waiting");
      else finish(state, message);
    }
    return el;
  }

  function onTurn(frame) {
    if (conversationId && frame.conversation !== conversationId) return;
    if (frame.created && !conversationId) {
      conversationId = frame.conversation;
      main.dataset.conversation = String(conversationId);
      const url = main.dataset.conversationUrl.replace("/0/", "/" + conversationId + "/");
      history.replaceState({}, "", url);
      document.getElementById("chat-title").textContent = frame.title || strings.new_chat;
      document.title = (frame.title || strings.new_chat) + " · " + document.title.split(" · ").pop();
      const list = document.getElementById("conv-list");
      list.dataset.current = String(conversationId);
      list.setAttribute("hx-vals", JSON.stringify({ current: String(conversationId) }));
      document.body.dispatchEvent(new CustomEvent("conversations-changed", { bubbles: true }));
    }
    if (frame.replaced) {
      const old = document.getElementById("m-" + frame.replaced);
      if (old) old.remove();
      replies.delete(frame.replaced);
    }
    if (frame.user_message) {
      const existing = document.getElementById("m-" + frame.user_message.id);
      if (existing && frame.kind === "edit") {
        let next = existing.nextElementSibling;
        while (next) {
          const after = next.nextElementSibling;
          if (next.matches("article.message")) {
            replies.delete(Number(next.dataset.id));
            next.remove();
          }
          next = after;
        }
        existing.querySelector("template.raw").content.textContent = frame.user_message.content;
        const body = existing.querySelector(".message-body .md");
        if (window.WebuiMarkdown) window.WebuiMarkdown.renderInto(body, frame.user_message.content);
        else body.textContent = frame.user_message.content;
      } else {
        addMessage(frame.user_message);
      }
    }
    addMessage(frame.reply);
    if (frame.ref && frame.ref === pendingRef) {
      pendingRef = null;
      if (frame.kind === "send") {
        input.value = "";
        autoGrow();
      }
    }
    followBottom = true;
    scrollIfFollowing(true);
    updateComposer();
  }

  // -- socket ----------------------------------------------------------------------------
  function wsUrl() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + location.host + main.dataset.wsUrl;
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  function resubscribe() {
    if (!conversationId) return;
    const have = {};
    document.querySelectorAll('article.message[data-status="streaming"]').forEach((el) => {
      const state = replyState(Number(el.dataset.id), el);
      if (state) have[state.id] = [state.have, state.haveThinking];
    });
    send({ type: "subscribe", conversation: conversationId, replies: have });
  }

  function connect() {
    socket = new WebSocket(wsUrl());
    socket.addEventListener("open", () => {
      if (retryDelay > 500) toast(strings.reconnected, "ok");
      retryDelay = 500;
      main.dataset.socket = "open";
      resubscribe();
      updateComposer();
    });
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(event.data);
      switch (frame.type) {
        case "delta":
        case "snapshot":
          applyDelta(frame);
          break;
        case "state": {
          const state = replyState(frame.reply);
          if (state && state.status === "streaming") setStatusText(state, frame.state);
          break;
        }
        case "done": {
          const state = replyState(frame.reply);
          if (state) finish(state, frame);
          break;
        }
        case "turn":
          onTurn(frame);
          break;
        case "title":
          document.querySelectorAll('[data-title-for="' + frame.conversation + '"]').forEach((el) => {
            el.textContent = frame.title;
          });
          if (frame.conversation === conversationId) document.getElementById("chat-title").textContent = frame.title;
          break;
        case "conversation":
          document.body.dispatchEvent(new CustomEvent("conversations-changed", { bubbles: true }));
          break;
        case "stopped": {
          const state = replyState(frame.reply);
          if (state && !frame.running) resubscribe();
          break;
        }
        case "error":
          if (frame.ref && frame.ref === pendingRef) {
            pendingRef = null;
            updateComposer();
          }
          toast(frame.message, "error");
          break;
      }
    });
    socket.addEventListener("close", (event) => {
      main.dataset.socket = "closed";
      if (event.code === 4401) {
        location.reload();
        return;
      }
      toast(strings.disconnected, "error");
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    });
  }

  // -- composer --------------------------------------------------------------------------
  function autoGrow() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, window.innerHeight * 0.4) + "px";
  }

  function submit() {
    const content = input.value;
    if (!content.trim() || pendingRef !== null) return;
    if (!modelPicker.value) {
      toast(strings.no_model, "error");
      return;
    }
    const ref = "r" + ++refCounter;
    const ok = send({ type: "send", conversation: conversationId, content, model: modelPicker.value, ref });
    if (!ok) {
      toast(strings.disconnected, "error");
      return;
    }
    pendingRef = ref;
    updateComposer();
  }

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", autoGrow);
  stopButton.addEventListener("click", stopAll);

  function stopAll() {
    streamingHere().forEach((state) => send({ type: "stop", reply: state.id }));
  }

  document.querySelectorAll(".example-prompt").forEach((button) => {
    button.addEventListener("click", () => {
      input.value = button.textContent.trim();
      autoGrow();
      submit();
    });
  });

  modelPicker.addEventListener("change", () => {
    const url = conversationId ? main.dataset.modelUrl : main.dataset.defaultModelUrl;
    if (!url) return;
    const body = new URLSearchParams({ model: modelPicker.value });
    fetch(url, { method: "POST", body, headers: { "X-CSRFToken": csrf }, credentials: "same-origin" });
  });

  // -- message actions -------------------------------------------------------------------
  messagesEl.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    const article = button.closest("article.message");
    const id = Number(article.dataset.id);
    const action = button.dataset.action;
    if (action === "copy") copyMessage(article, button);
    else if (action === "regenerate" || action === "retry") send({ type: "regenerate", reply: id, ref: "r" + ++refCounter });
    else if (action === "edit") startEdit(article);
  });

  async function copyMessage(article, button) {
    const text = article.querySelector("template.raw").content.textContent;
    const ok = window.WebuiMarkdown ? await window.WebuiMarkdown.copyText(text) : false;
    const label = button.textContent;
    button.textContent = ok ? strings.copied : strings.copy_failed;
    setTimeout(() => (button.textContent = label), 1500);
  }

  function startEdit(article) {
    if (article.querySelector(".edit-form")) return;
    const text = article.querySelector("template.raw").content.textContent;
    const form = document.createElement("form");
    form.className = "edit-form stack";
    const area = document.createElement("textarea");
    area.value = text;
    area.rows = Math.min(12, text.split("\n").length + 1);
    area.setAttribute("aria-label", strings.save_send);
    const row = document.createElement("div");
    row.className = "row";
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "btn btn-primary btn-small";
    save.textContent = strings.save_send;
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "btn btn-ghost btn-small";
    cancel.textContent = strings.cancel;
    row.append(save, cancel);
    form.append(area, row);
    article.querySelector(".message-body").hidden = true;
    article.insertBefore(form, article.querySelector(".message-footer"));
    area.focus();
    const close = () => {
      form.remove();
      article.querySelector(".message-body").hidden = false;
    };
    cancel.addEventListener("click", close);
    area.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!area.value.trim()) return;
      if (send({ type: "edit", message: Number(article.dataset.id), content: area.value, ref: "r" + ++refCounter })) close();
    });
  }

  // -- scrolling -------------------------------------------------------------------------
  function nearBottom() {
    return messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 80;
  }
  function scrollIfFollowing(force) {
    if (followBottom || force) {
      messagesEl.scrollTop = messagesEl.scrollHeight;
      jumpButton.hidden = true;
    } else {
      jumpButton.hidden = false;
    }
  }
  messagesEl.addEventListener("scroll", () => {
    followBottom = nearBottom();
    if (followBottom) jumpButton.hidden = true;
  }, { passive: true });
  jumpButton.addEventListener("click", () => {
    followBottom = true;
    scrollIfFollowing(true);
  });

  // -- dialogs, sidebar, shortcuts -------------------------------------------------------
  document.querySelectorAll("[data-open-dialog]").forEach((button) => {
    button.addEventListener("click", () => document.getElementById(button.dataset.openDialog).showModal());
  });
  document.querySelectorAll("dialog [data-close-dialog]").forEach((button) => {
    button.addEventListener("click", () => button.closest("dialog").close());
  });
  document.body.addEventListener("settings-saved", (event) => toast(event.detail.message || event.detail.value, "ok"));
  const settingsTitle = document.getElementById("id_title");
  if (settingsTitle) {
    settingsTitle.addEventListener("change", () => {
      const body = new URLSearchParams({ title: settingsTitle.value });
      fetch(document.getElementById("rename-form").action, {
        method: "POST", body, headers: { "X-CSRFToken": csrf, "HX-Request": "true" }, credentials: "same-origin",
      }).then(() => {
        document.getElementById("chat-title").textContent = settingsTitle.value;
        document.body.dispatchEvent(new CustomEvent("conversations-changed", { bubbles: true }));
      });
    });
  }
  if (window.webuiShortcuts) {
    window.webuiShortcuts.register({ key: "o", ctrl: true, shift: true, description: strings.new_chat,
      handler: () => { location.href = document.querySelector(".new-chat").href; } });
    window.webuiShortcuts.register({ key: "k", ctrl: true, description: document.getElementById("conv-search").placeholder,
      handler: () => { document.body.classList.add("sidebar-open"); document.getElementById("conv-search").focus(); } });
    window.webuiShortcuts.register({ key: "/", description: input.getAttribute("placeholder"), handler: () => input.focus() });
    window.webuiShortcuts.register({ key: "Escape", description: stopButton.textContent.trim(), handler: stopAll });
  } else {
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && streamingHere().length) stopAll();
    });
  }

  // -- start -----------------------------------------------------------------------------
  document.querySelectorAll('article.message[data-status="streaming"]').forEach((el) => {
    replyState(Number(el.dataset.id), el);
  });
  autoGrow();
  scrollIfFollowing(true);
  updateComposer();
  connect();
  input.focus();
})();
