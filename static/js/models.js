// The models dashboard's live part: one socket (reconnecting with backoff) that renders the
// progress of every pull, push and create, lets admins cancel, and tells htmx when the
// tables need re-fetching. Server text only ever goes through textContent.
(function () {
  "use strict";

  const root = document.getElementById("models-dashboard");
  const labelsNode = document.getElementById("models-labels");
  if (!root || !labelsNode) return;

  const labels = JSON.parse(labelsNode.textContent);
  const statusesNode = document.getElementById("ollama-statuses");
  // Ollama's own progress lines ("pulling manifest"…) in the page's language (templatetags).
  const statuses = (statusesNode ? JSON.parse(statusesNode.textContent) : []).map(([pattern, words]) => [
    new RegExp("^(?:" + pattern + ")$"),
    words,
  ]);
  const list = document.getElementById("operations");
  const empty = document.getElementById("operations-empty");
  const lang = document.documentElement.lang || "en";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const cancelUrlZero = root.dataset.cancelUrl || "";
  const several = root.dataset.several === "1"; // a fleet of servers: say which one works
  const FORBIDDEN = 4403;
  const REMOVE_AFTER_MS = 8000;

  let socket = null;
  let attempts = 0;
  const toasted = new Set();
  const decimal = new Intl.NumberFormat(lang, { maximumFractionDigits: 1 });

  // -- formatting ------------------------------------------------------------------------
  function format(template, values) {
    return String(template).replace(/%\((\w+)\)s/g, (_match, key) => (key in values ? values[key] : ""));
  }

  function ollamaStatus(text) {
    for (const [pattern, words] of statuses) {
      const match = pattern.exec(text || "");
      if (match) {
        const values = {};
        for (const [key, value] of Object.entries(match.groups || {})) values[key] = value || "";
        return format(words, values).trim();
      }
    }
    return text || "";
  }

  function bytes(count) {
    const units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let value = count;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return decimal.format(value) + "\u00a0" + units[unit];
  }

  function duration(total) {
    const seconds = Math.max(0, Math.round(total));
    const hours = Math.floor(seconds / 3600);
    const minutes = Math.floor((seconds % 3600) / 60);
    const rest = seconds % 60;
    if (hours) return format(labels.hours, { hours: hours, minutes: minutes });
    if (minutes) return format(labels.minutes, { minutes: minutes, seconds: rest });
    return format(labels.seconds, { seconds: rest });
  }

  // Parts of a summary wrap as wholes ("剩余 15 秒" never splits across lines).
  function showSummary(element, progress) {
    const parts = summary(progress);
    const nodes = [];
    parts.forEach((text, index) => {
      if (index) nodes.push(document.createTextNode(" · "));
      const part = make("span", "nowrap");
      part.textContent = text;
      nodes.push(part);
    });
    element.replaceChildren(...nodes);
  }

  function summary(progress) {
    if (!progress.total) return [];
    const parts = [
      decimal.format(progress.percent || 0) + "%",
      bytes(progress.completed) + " / " + bytes(progress.total),
    ];
    if (progress.speed) parts.push(bytes(progress.speed) + "/s");
    if (progress.eta >= 1) parts.push(format(labels.left, { time: duration(progress.eta) }));
    return parts;
  }

  function setProgress(bar, percent, status) {
    if (status === "succeeded") bar.value = 100;
    else if (percent !== null && percent !== undefined) bar.value = percent;
    else if (status === "running") bar.removeAttribute("value"); // indeterminate: size not known yet
    else bar.value = 0;
  }

  const BADGES = {
    running: "badge-warn",
    succeeded: "badge-ok",
    failed: "badge-danger",
    cancelled: "badge-muted",
  };

  // -- DOM -------------------------------------------------------------------------------
  function make(tag, className, attributes) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
  }

  function buildRow(operation) {
    const row = make("article", "card stack operation", {
      id: "operation-" + operation.id,
      "data-operation-id": String(operation.id),
      "data-live": "1",
    });
    const head = make("div", "row");
    head.append(
      make("strong", "", { "data-role": "title" }),
      make("span", "badge", { "data-role": "status" }),
      make("span", "muted", { "data-role": "who" }),
    );
    const cancel = make("form", "", {
      method: "post",
      action: cancelUrlZero.replace("/0/", "/" + operation.id + "/"),
      "data-role": "cancel",
    });
    const token = make("input", "", { type: "hidden", name: "csrfmiddlewaretoken", value: csrf });
    const cancelButton = make("button", "btn btn-small btn-danger", { type: "submit" });
    cancelButton.textContent = labels.cancel;
    cancel.append(token, cancelButton);
    const dismiss = make("button", "btn btn-small btn-ghost", { type: "button", "data-role": "dismiss" });
    dismiss.textContent = labels.dismiss;
    dismiss.hidden = true;
    head.append(cancel, dismiss);

    const statusText = make("p", "muted", { "data-role": "status-text" });
    const progress = make("div", "progress");
    progress.append(
      make("progress", "", { max: "100", "aria-label": labels.progress, "data-role": "bar" }),
      make("span", "", { "data-role": "summary" }),
    );
    const layers = make("div", "stack layers", { "data-role": "layers" });
    const error = make("p", "banner banner-error", { role: "alert", "data-role": "error" });
    error.hidden = true;
    row.append(head, statusText, progress, layers, error);
    return row;
  }

  function part(row, role) {
    return row.querySelector('[data-role="' + role + '"]');
  }

  function updateLayers(container, layers, status) {
    const seen = new Set();
    for (const layer of layers) {
      seen.add(layer.digest);
      let item = null;
      for (const candidate of container.children) {
        if (candidate.dataset.digest === layer.digest) item = candidate;
      }
      if (!item) {
        item = make("div", "layer", { "data-digest": layer.digest });
        const bar = make("div", "progress");
        bar.append(
          make("progress", "", { max: "100", "aria-label": layer.short }),
          make("span", "muted", { "data-role": "layer-summary" }),
        );
        item.append(make("span", "", { "data-role": "layer-status" }), bar);
        container.append(item);
      }
      part(item, "layer-status").textContent = ollamaStatus(layer.status);
      setProgress(item.querySelector("progress"), layer.percent, status);
      showSummary(part(item, "layer-summary"), layer);
    }
    for (const item of Array.from(container.children)) {
      if (!seen.has(item.dataset.digest)) item.remove();
    }
  }

  function render(operation) {
    let row = list.querySelector('[data-operation-id="' + operation.id + '"]');
    if (row && !row.dataset.live) {
      // Rendered by the server before the socket opened: rebuild it as a live row.
      const fresh = buildRow(operation);
      row.replaceWith(fresh);
      row = fresh;
    }
    if (!row) {
      row = buildRow(operation);
      list.append(row);
    }
    const finished = !operation.running;
    row.dataset.status = operation.status;
    const where = several && operation.server ? " · " + operation.server : "";
    part(row, "title").textContent = (labels.kinds[operation.kind] || operation.kind) + " · " + operation.model + where;
    const badge = part(row, "status");
    badge.className = "badge " + (BADGES[operation.status] || "badge-muted");
    badge.textContent = labels.statuses[operation.status] || operation.status;
    part(row, "who").textContent = operation.user || "";
    part(row, "status-text").textContent = ollamaStatus(operation.status_text);
    setProgress(part(row, "bar"), operation.percent, operation.status);
    showSummary(part(row, "summary"), operation);
    // Layers only when there are several: one layer would repeat the bar above it.
    const layers = operation.layers || [];
    updateLayers(part(row, "layers"), layers.length > 1 ? layers : [], operation.status);
    const error = part(row, "error");
    error.textContent = operation.error || "";
    error.hidden = !operation.error;
    part(row, "cancel").hidden = finished;
    part(row, "dismiss").hidden = !finished;
    if (finished) settle(row, operation);
    refreshEmpty();
  }

  function settle(row, operation) {
    if (toasted.has(operation.id)) return;
    toasted.add(operation.id);
    const kind = operation.status === "succeeded" ? "ok" : operation.status === "failed" ? "error" : "info";
    toast(
      format(labels.finished, {
        kind: labels.kinds[operation.kind] || operation.kind,
        model: operation.model + (several && operation.server ? " (" + operation.server + ")" : ""),
        status: labels.statuses[operation.status] || operation.status,
      }),
      kind,
    );
    announce("activity-changed");
    if (operation.status === "succeeded") announce("models-changed");
    // Failures stay until dismissed, so nobody misses why.
    if (operation.status !== "failed") {
      window.setTimeout(() => {
        row.remove();
        refreshEmpty();
      }, REMOVE_AFTER_MS);
    }
  }

  function refreshEmpty() {
    if (empty) empty.hidden = list.children.length > 0;
  }

  function toast(message, kind) {
    if (typeof window.webuiToast === "function") window.webuiToast(message, kind);
  }

  const pending = {};
  function announce(eventName) {
    // Coalesce bursts (several frames in a row) into one re-fetch.
    window.clearTimeout(pending[eventName]);
    pending[eventName] = window.setTimeout(() => {
      document.body.dispatchEvent(new CustomEvent(eventName, { bubbles: true }));
    }, 150);
  }

  function applySnapshot(operations) {
    const running = new Set(operations.map((operation) => String(operation.id)));
    let vanished = false;
    for (const row of Array.from(list.children)) {
      if (row.dataset.status === "running" && !running.has(row.dataset.operationId)) {
        row.remove(); // it ended while the socket was away; the history has the outcome
        vanished = true;
      }
    }
    for (const operation of operations) render(operation);
    if (vanished) {
      announce("activity-changed");
      announce("models-changed");
    }
    refreshEmpty();
  }

  // -- socket ----------------------------------------------------------------------------
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + root.dataset.wsPath);
    root.dataset.socket = "connecting";
    socket.addEventListener("open", () => {
      attempts = 0;
      root.dataset.socket = "open";
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_error) {
        return;
      }
      if (frame.type === "snapshot") applySnapshot(frame.operations || []);
      else if (frame.type === "operation" || frame.type === "started") render(frame.operation);
      else if (frame.type === "models.changed") announce("models-changed");
      else if (frame.type === "activity.changed") announce("activity-changed");
      else if (frame.type === "error") toast(frame.message, "error");
    });
    socket.addEventListener("close", (event) => {
      root.dataset.socket = "closed";
      socket = null;
      if (event.code === FORBIDDEN) return; // not (or no longer) an admin: retrying cannot help
      attempts += 1;
      if (attempts === 3) toast(labels.reconnecting, "info");
      const delay = Math.min(30000, 500 * 2 ** attempts) * (0.75 + Math.random() / 2);
      window.setTimeout(connect, delay);
    });
  }

  list.addEventListener("submit", (event) => {
    const form = event.target.closest('form[data-role="cancel"]');
    const row = event.target.closest("[data-operation-id]");
    if (!form || !row || !socket || socket.readyState !== WebSocket.OPEN) return; // plain POST then
    event.preventDefault();
    form.querySelector("button").disabled = true;
    socket.send(JSON.stringify({ type: "cancel", operation: Number(row.dataset.operationId) }));
  });

  list.addEventListener("click", (event) => {
    const dismiss = event.target.closest('[data-role="dismiss"]');
    if (!dismiss) return;
    dismiss.closest("[data-operation-id]").remove();
    refreshEmpty();
  });

  connect();
})();
