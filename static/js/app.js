/*
 * Small global behaviour for every page (no framework; htmx does the rest):
 *   theme toggle ([data-theme-toggle]), toasts (window.webuiToast), confirmations
 *   (form[data-confirm], button[data-confirm], hx-confirm → window.webuiConfirm), keyboard
 *   shortcuts (window.webuiShortcuts) with a help dialog on "?", the phone sidebar
 *   ([data-sidebar-toggle], .sidebar-backdrop), markdown of server-rendered messages, relative
 *   times (<time data-relative>) in the page's language.
 * Translated strings come from the data attributes of #webui-i18n (templates/base.html).
 */
(function () {
  "use strict";
  var root = document.documentElement;

  function t(key, fallback) {
    var holder = document.getElementById("webui-i18n");
    return (holder && holder.dataset[key]) || fallback;
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // -- theme --------------------------------------------------------------------------------
  var THEMES = ["system", "light", "dark"];

  function currentTheme() {
    var theme = root.getAttribute("data-theme");
    return THEMES.indexOf(theme) >= 0 ? theme : "system";
  }

  function labelThemeToggles() {
    var theme = currentTheme();
    var key = "label" + theme.charAt(0).toUpperCase() + theme.slice(1);
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      var label = button.dataset[key] || "Theme: " + theme;
      // Icon buttons are named by the label; a button with visible text keeps its text as name.
      if (!button.textContent.trim()) button.setAttribute("aria-label", label);
      button.setAttribute("title", label);
      button.setAttribute("data-theme-current", theme);
    });
  }

  function setTheme(theme, button) {
    root.setAttribute("data-theme", theme);
    try {
      window.localStorage.setItem("webui-theme", theme);
    } catch (error) {
      /* private mode: the choice lasts for this page only */
    }
    labelThemeToggles();
    var saveUrl = button && button.getAttribute("data-theme-save-url");
    if (saveUrl) {
      // Keep the profile in step so other devices follow; failure only loses that nicety.
      fetch(saveUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "Content-Type": "application/x-www-form-urlencoded" },
        body: "theme=" + encodeURIComponent(theme),
      }).catch(function () {});
    }
    document.dispatchEvent(new CustomEvent("webui:theme", { detail: { theme: theme } }));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-theme-toggle]");
    if (!button) return;
    var next = THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length];
    setTheme(next, button);
  });

  // -- toasts -------------------------------------------------------------------------------
  function toastContainer() {
    var container = document.getElementById("toasts");
    if (!container) {
      container = document.createElement("div");
      container.id = "toasts";
      container.className = "toasts";
      container.setAttribute("aria-live", "polite");
      document.body.appendChild(container);
    }
    return container;
  }

  /** Show a short message; returns {dismiss}. kind: "ok" | "error" | "info"; timeout 0 = stays. */
  function webuiToast(message, kind, options) {
    kind = kind === "error" || kind === "info" ? kind : "ok";
    options = options || {};
    var timeout = options.timeout == null ? (kind === "error" ? 8000 : 4000) : options.timeout;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + kind;
    toast.setAttribute("role", kind === "error" ? "alert" : "status");
    var text = document.createElement("span");
    text.className = "toast-text";
    text.textContent = String(message);
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", t("dismiss", "Dismiss"));
    close.textContent = "\u00d7";
    toast.appendChild(text);
    toast.appendChild(close);
    toastContainer().appendChild(toast);

    var timer = 0;
    function dismiss() {
      clearTimeout(timer);
      toast.classList.add("toast-leaving");
      var reduce = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
      setTimeout(function () {
        toast.remove();
      }, reduce ? 0 : 180);
    }
    function arm() {
      if (timeout > 0) timer = setTimeout(dismiss, timeout);
    }
    close.addEventListener("click", dismiss);
    // Reading or reaching for it pauses the countdown.
    toast.addEventListener("mouseenter", function () {
      clearTimeout(timer);
    });
    toast.addEventListener("mouseleave", arm);
    toast.addEventListener("focusin", function () {
      clearTimeout(timer);
    });
    arm();
    return { element: toast, dismiss: dismiss };
  }
  window.webuiToast = webuiToast;

  // Servers send toasts through django-htmx: trigger_client_event(response, "webui:toast",
  // {"message": "...", "kind": "ok"}).
  document.addEventListener("webui:toast", function (event) {
    var detail = event.detail || {};
    if (detail.message) webuiToast(detail.message, detail.kind, { timeout: detail.timeout });
  });

  function wantsErrorToast(event) {
    var element = event.detail && event.detail.elt;
    return !(element && element.closest && element.closest("[data-no-error-toast]"));
  }
  document.addEventListener("htmx:responseError", function (event) {
    if (!wantsErrorToast(event)) return;
    var status = event.detail && event.detail.xhr ? event.detail.xhr.status : "";
    webuiToast(t("requestFailed", "Something went wrong (%s). Please try again.").replace("%s", status), "error");
  });
  document.addEventListener("htmx:sendError", function (event) {
    if (!wantsErrorToast(event)) return;
    webuiToast(t("networkError", "Cannot reach the server. Check your connection."), "error");
  });

  // -- confirmations ------------------------------------------------------------------------
  function confirmOptions(element) {
    var options = {};
    if (!element) return options;
    options.confirmLabel = element.getAttribute("data-confirm-label") || "";
    var submit = element.matches("form") ? element.querySelector('[type="submit"], button:not([type])') : element;
    options.danger = element.hasAttribute("data-confirm-danger") || !!(submit && submit.classList.contains("btn-danger"));
    return options;
  }

  /** Ask a yes/no question in the app's <dialog class="modal">; resolves true on confirm. */
  function webuiConfirm(message, options) {
    options = options || {};
    var dialog = document.getElementById("webui-confirm");
    if (!dialog || typeof dialog.showModal !== "function") {
      return Promise.resolve(window.confirm(message));
    }
    if (dialog.open) dialog.close("cancel");
    var ok = dialog.querySelector('[value="ok"]');
    var cancel = dialog.querySelector('[value="cancel"]');
    dialog.querySelector("[data-confirm-message]").textContent = message;
    ok.textContent = options.confirmLabel || ok.getAttribute("data-default-label") || ok.textContent;
    ok.classList.toggle("btn-danger", !!options.danger);
    ok.classList.toggle("btn-primary", !options.danger);
    dialog.returnValue = "";
    var opener = document.activeElement;
    return new Promise(function (resolve) {
      dialog.addEventListener(
        "close",
        function () {
          if (opener && opener.focus && document.contains(opener)) opener.focus();
          resolve(dialog.returnValue === "ok");
        },
        { once: true }
      );
      dialog.showModal();
      (options.danger ? cancel : ok).focus(); // the safe choice is the default for destructive ones
    });
  }
  window.webuiConfirm = webuiConfirm;

  // Capture phase: we see the event before htmx's own listeners on the element do.
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-confirm")) return;
      if (form._webuiConfirmed) {
        form._webuiConfirmed = false;
        return;
      }
      event.preventDefault();
      event.stopImmediatePropagation();
      var submitter = event.submitter;
      webuiConfirm(form.getAttribute("data-confirm"), confirmOptions(form)).then(function (ok) {
        if (!ok) return;
        form._webuiConfirmed = true;
        form._webuiSkipHtmxConfirm = true; // hx-confirm on the same form must not ask again
        if (submitter && submitter.form === form) form.requestSubmit(submitter);
        else form.requestSubmit();
      });
    },
    true
  );

  document.addEventListener(
    "click",
    function (event) {
      var trigger = event.target.closest && event.target.closest("button[data-confirm], a[data-confirm]");
      if (!trigger) return;
      if (trigger._webuiConfirmed) {
        trigger._webuiConfirmed = false;
        return;
      }
      event.preventDefault();
      event.stopImmediatePropagation();
      webuiConfirm(trigger.getAttribute("data-confirm"), confirmOptions(trigger)).then(function (ok) {
        if (!ok) return;
        trigger._webuiConfirmed = true;
        trigger._webuiSkipHtmxConfirm = true;
        if (trigger.form && trigger.form.hasAttribute("data-confirm")) trigger.form._webuiConfirmed = true;
        if (trigger.form) trigger.form._webuiSkipHtmxConfirm = true;
        trigger.click();
      });
    },
    true
  );

  document.addEventListener("htmx:confirm", function (event) {
    var question = event.detail && event.detail.question;
    if (!question) return; // htmx asks on every request; only hx-confirm ones have a question
    event.preventDefault();
    var element = event.detail.elt;
    if (element && element._webuiSkipHtmxConfirm) {
      element._webuiSkipHtmxConfirm = false; // data-confirm asked already
      event.detail.issueRequest(true);
      return;
    }
    webuiConfirm(question, confirmOptions(event.detail.elt)).then(function (ok) {
      if (ok) event.detail.issueRequest(true);
    });
  });

  // -- keyboard shortcuts -------------------------------------------------------------------
  var shortcuts = [];
  var isMac = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent || "");

  function isTyping(target) {
    if (!target || !target.closest) return false;
    if (target.isContentEditable) return true;
    var field = target.closest("input, textarea, select");
    if (!field) return false;
    if (field.tagName !== "INPUT") return true;
    return !/^(button|submit|reset|checkbox|radio|range|color|file|image)$/i.test(field.type);
  }

  function matches(entry, event) {
    if (!event.key || event.key.toLowerCase() !== entry.key.toLowerCase()) return false;
    if ((event.ctrlKey || event.metaKey) !== entry.ctrl) return false;
    if (event.altKey !== entry.alt) return false;
    if (entry.shift !== null && event.shiftKey !== entry.shift) return false;
    return true;
  }

  var KEY_NAMES = { Escape: "Esc", ArrowUp: "\u2191", ArrowDown: "\u2193", ArrowLeft: "\u2190", ArrowRight: "\u2192", " ": "Space" };
  function keysOf(entry) {
    var keys = [];
    if (entry.ctrl) keys.push(isMac ? "\u2318" : "Ctrl");
    if (entry.alt) keys.push(isMac ? "\u2325" : "Alt");
    if (entry.shift) keys.push("Shift");
    keys.push(KEY_NAMES[entry.key] || (entry.key.length === 1 ? entry.key.toUpperCase() : entry.key));
    return keys;
  }

  window.webuiShortcuts = {
    /**
     * Register {key, ctrl, alt, shift, description, handler, allowInInputs}; returns an
     * unregister function. ctrl means Ctrl or ⌘. Plain keys are ignored while typing in a
     * field unless allowInInputs; shift is ignored unless given.
     */
    register: function (spec) {
      if (!spec || !spec.key || typeof spec.handler !== "function") throw new Error("shortcut needs key and handler");
      var entry = {
        key: String(spec.key),
        ctrl: !!spec.ctrl,
        alt: !!spec.alt,
        shift: spec.shift === undefined ? null : !!spec.shift,
        description: spec.description || "",
        handler: spec.handler,
        allowInInputs: !!spec.allowInInputs,
      };
      shortcuts.push(entry);
      return function unregister() {
        var index = shortcuts.indexOf(entry);
        if (index >= 0) shortcuts.splice(index, 1);
      };
    },
    list: function () {
      return shortcuts.map(function (entry) {
        return { key: entry.key, ctrl: entry.ctrl, alt: entry.alt, shift: entry.shift, description: entry.description, keys: keysOf(entry) };
      });
    },
    showHelp: showShortcutHelp,
  };

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.isComposing || event.keyCode === 229) return; // IME input
    if (modalOpen()) return; // a modal dialog owns the keyboard
    var typing = isTyping(event.target);
    for (var i = shortcuts.length - 1; i >= 0; i--) {
      var entry = shortcuts[i];
      if (!matches(entry, event)) continue;
      if (typing && !entry.ctrl && !entry.alt && !entry.allowInInputs) continue;
      event.preventDefault();
      entry.handler(event);
      return;
    }
  });

  function modalOpen() {
    try {
      return !!document.querySelector("dialog:modal");
    } catch (error) {
      return !!document.querySelector("dialog[open]"); // browsers without :modal
    }
  }

  function showShortcutHelp() {
    var dialog = document.getElementById("webui-shortcuts");
    if (!dialog || typeof dialog.showModal !== "function") return;
    var list = dialog.querySelector(".shortcut-list");
    list.replaceChildren();
    window.webuiShortcuts.list().forEach(function (entry) {
      var row = document.createElement("div");
      row.className = "shortcut-row";
      var term = document.createElement("dt");
      entry.keys.forEach(function (key, index) {
        if (index) term.appendChild(document.createTextNode(" + "));
        var kbd = document.createElement("kbd");
        kbd.className = "kbd";
        kbd.textContent = key;
        term.appendChild(kbd);
      });
      var description = document.createElement("dd");
      description.textContent = entry.description;
      row.appendChild(term);
      row.appendChild(description);
      list.appendChild(row);
    });
    dialog.showModal();
  }

  window.webuiShortcuts.register({
    key: "?",
    description: t("shortcutHelp", "Show keyboard shortcuts"),
    handler: showShortcutHelp,
  });

  // -- phone sidebar ------------------------------------------------------------------------
  function setSidebar(open) {
    document.body.classList.toggle("sidebar-open", open);
    document.querySelectorAll("[data-sidebar-toggle]").forEach(function (button) {
      button.setAttribute("aria-expanded", String(open));
    });
    var sidebar = document.querySelector(".sidebar");
    if (open && sidebar && !sidebar.contains(document.activeElement)) {
      var first = document.querySelector(".sidebar a[href], .sidebar button, .sidebar input");
      if (first) first.focus();
    }
  }
  // A page script may toggle the sidebar itself: act only when nobody else changed it.
  var sidebarWasOpen = null;
  document.addEventListener(
    "click",
    function () {
      sidebarWasOpen = document.body.classList.contains("sidebar-open");
    },
    true
  );
  document.addEventListener("click", function (event) {
    if (!event.target.closest) return;
    var open = document.body.classList.contains("sidebar-open");
    if (event.target.closest("[data-sidebar-toggle]")) {
      setSidebar(open === sidebarWasOpen ? !open : open);
    } else if (event.target.closest(".sidebar-backdrop, [data-sidebar-close]")) {
      setSidebar(false);
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    if (document.body.classList.contains("sidebar-open")) {
      setSidebar(false);
      var toggle = document.querySelector("[data-sidebar-toggle]");
      if (toggle) toggle.focus();
    }
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      var summary = menu.querySelector("summary");
      if (summary) summary.focus();
    });
  });

  // Dropdown menus (<details class="menu">) close when the click lands elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });

  // -- markdown of server-rendered messages -----------------------------------------------------
  function enhance() {
    if (window.WebuiMarkdown) window.WebuiMarkdown.enhanceAll(document);
  }
  document.addEventListener("htmx:afterSwap", enhance);
  document.addEventListener("htmx:oobAfterSwap", enhance);

  // -- relative times ---------------------------------------------------------------------------
  // <time datetime="…" data-relative> reads "3 minutes ago" / "3分钟前" in the page's language and
  // stays current; the server's text (humanize's naturaltime) is what shows without JavaScript.
  var RELATIVE_UNITS = [
    ["year", 365 * 86400],
    ["month", 30 * 86400],
    ["week", 7 * 86400],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
  ];
  var relativeFormat = null;
  try {
    relativeFormat = new Intl.RelativeTimeFormat(root.lang || undefined, { numeric: "auto" });
  } catch (error) {
    /* no Intl.RelativeTimeFormat: keep the server's words */
  }

  function relativeText(date, now) {
    var seconds = (date.getTime() - now) / 1000;
    if (Math.abs(seconds) < 45) return relativeFormat.format(0, "second"); // "now" / "现在"
    for (var i = 0; i < RELATIVE_UNITS.length; i++) {
      var unit = RELATIVE_UNITS[i];
      if (Math.abs(seconds) >= unit[1] || unit[0] === "minute") {
        // Whole units, like the server's words: 18 months ago is "1 year ago", not "2 years".
        var count = unit[0] === "minute" ? Math.round(seconds / 60) : Math.trunc(seconds / unit[1]);
        return relativeFormat.format(count, unit[0]);
      }
    }
  }

  function updateRelativeTimes(scope) {
    if (!relativeFormat) return;
    var now = Date.now();
    (scope || document).querySelectorAll("time[data-relative][datetime]").forEach(function (element) {
      var date = new Date(element.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      var text = relativeText(date, now);
      if (element.textContent !== text) element.textContent = text;
    });
  }
  window.webuiRelativeTimes = updateRelativeTimes;
  document.addEventListener("htmx:afterSwap", function () {
    updateRelativeTimes();
  });
  window.setInterval(updateRelativeTimes, 30000);

  function ready() {
    labelThemeToggles();
    enhance();
    updateRelativeTimes();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
