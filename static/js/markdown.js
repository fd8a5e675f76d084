/*
 * The one markdown renderer of the app: every message, finished or streaming, goes through here.
 *
 *   WebuiMarkdown.render(text)             -> sanitized HTML string
 *   WebuiMarkdown.renderInto(el, text)     -> renders, highlights code, returns el
 *   WebuiMarkdown.createStream(el)         -> {append(delta), finish(), reset(text), flush(), text(), stats}
 *   WebuiMarkdown.enhanceAll(root)         -> renders every [data-md] element not yet done
 *   WebuiMarkdown.copyText(text)           -> Promise<boolean> (clipboard with an http fallback)
 *   WebuiMarkdown.sanitize(html)           -> DOMPurify with the app's config
 *
 * Needs (loaded before it, `defer` keeps the order): markdown-it, DOMPurify, highlight.js, KaTeX.
 * KaTeX and highlight.js are optional: without them math shows as code and code is plain.
 * See docs/frontend.md for the security choices (no raw HTML, no remote images, link schemes).
 */
(function () {
  "use strict";

  var markdownit = window.markdownit;
  var createDOMPurify = window.DOMPurify;
  if (!markdownit || !createDOMPurify) {
    if (window.console) console.error("markdown.js needs markdown-it and DOMPurify loaded first");
    return;
  }

  // -- strings (translated by base.html through #webui-i18n data attributes) -----------------
  var DEFAULT_STRINGS = {
    copy: "Copy",
    copied: "Copied",
    copyFailed: "Copy failed",
    copyCode: "Copy code",
    code: "text",
    image: "Image",
  };
  var stringsCache = null;
  function strings() {
    if (stringsCache) return stringsCache;
    var holder = document.getElementById("webui-i18n");
    var result = {};
    Object.keys(DEFAULT_STRINGS).forEach(function (key) {
      var value = holder && holder.dataset ? holder.dataset[key] : "";
      result[key] = value || DEFAULT_STRINGS[key];
    });
    if (holder) stringsCache = result; // before the DOM is ready, try again next time
    return result;
  }

  // -- markdown-it set-up ---------------------------------------------------------------------
  var md = markdownit({ html: false, linkify: true, breaks: false, typographer: false });
  // "main.py" or "index.md" must not become links to Paraguay or Moldova: only explicit URLs
  // (with a scheme or "www.") and e-mail addresses are linkified.
  md.linkify.set({ fuzzyLink: false, fuzzyEmail: true });
  var escapeHtml = md.utils.escapeHtml;
  var unescapeAll = md.utils.unescapeAll;

  var SCHEME = /^([a-z][a-z0-9+.-]*):/i;
  var SAFE_DATA_IMAGE = /^data:image\/(png|gif|jpeg|webp);/i;

  function isAllowedUrl(url) {
    var value = String(url || "").trim();
    var scheme = SCHEME.exec(value);
    if (scheme) {
      var name = scheme[1].toLowerCase();
      if (name === "http" || name === "https" || name === "mailto") return true;
      return name === "data" && SAFE_DATA_IMAGE.test(value); // images only; links drop it below
    }
    // Relative: a colon before the first "/", "?" or "#" would be read as a scheme by someone.
    return !/^[^/?#]*:/.test(value);
  }

  var defaultValidateLink = md.validateLink;
  md.validateLink = function (url) {
    return defaultValidateLink(url) && isAllowedUrl(url);
  };

  function isExternal(href) {
    return !/^(mailto:|#)/i.test(href);
  }

  // Links: open outside the chat, give nothing away, and no data: links at all.
  md.renderer.rules.link_open = function (tokens, idx, options, env, self) {
    var token = tokens[idx];
    var href = token.attrGet("href") || "";
    if (isExternal(href)) {
      token.attrSet("target", "_blank");
      token.attrSet("rel", "noopener noreferrer nofollow");
    }
    return self.renderToken(tokens, idx, options);
  };

  md.core.ruler.push("webui_drop_data_links", function (state) {
    state.tokens.forEach(function (block) {
      if (block.type !== "inline" || !block.children) return;
      var dropping = false;
      block.children = block.children.filter(function (token) {
        if (token.type === "link_open" && /^\s*data:/i.test(token.attrGet("href") || "")) {
          dropping = true;
          return false;
        }
        if (token.type === "link_close" && dropping) {
          dropping = false;
          return false;
        }
        return true;
      });
    });
  });

  // Images: no remote requests (tracking pixels, intranet probes). Small inline data: images
  // (png/gif/jpeg/webp) are shown; every other image becomes a link that says what it is.
  md.renderer.rules.image = function (tokens, idx, options, env, self) {
    var token = tokens[idx];
    var src = token.attrGet("src") || "";
    var alt = self.renderInlineAsText(token.children || [], options, env);
    if (SAFE_DATA_IMAGE.test(src)) {
      return '<img src="' + escapeHtml(src) + '" alt="' + escapeHtml(alt) + '" loading="lazy">';
    }
    var label = alt || src;
    return (
      '<a class="md-image-link" href="' + escapeHtml(src) + '" target="_blank" rel="noopener noreferrer nofollow">' +
      '<span class="md-image-label">' + escapeHtml(strings().image) + ":</span> " + escapeHtml(label) + "</a>"
    );
  };

  // Fenced and indented code: a block with a header (language, Copy button).
  var LANGUAGE_NAME = /^[A-Za-z0-9_+#.-]{1,32}$/;
  function codeBlock(content, info) {
    // No trailing newline: a copied shell command must not run the moment it is pasted.
    content = content.replace(/\n$/, "");
    var lang = (info || "").split(/\s+/)[0] || "";
    if (!LANGUAGE_NAME.test(lang)) lang = "";
    var s = strings();
    return (
      '<div class="code-block"' + (lang ? ' data-lang="' + escapeHtml(lang) + '"' : "") + ">" +
      '<div class="code-header"><span class="code-lang">' + escapeHtml(lang || s.code) + "</span>" +
      '<button type="button" class="code-copy" aria-label="' + escapeHtml(s.copyCode) + '">' +
      escapeHtml(s.copy) + "</button></div>" +
      '<pre tabindex="0"><code' + (lang ? ' class="language-' + escapeHtml(lang) + '"' : "") + ">" +
      escapeHtml(content) + "</code></pre></div>\n"
    );
  }
  md.renderer.rules.fence = function (tokens, idx) {
    var token = tokens[idx];
    return codeBlock(token.content, token.info ? unescapeAll(token.info).trim() : "");
  };
  md.renderer.rules.code_block = function (tokens, idx) {
    return codeBlock(tokens[idx].content, "");
  };

  // Tables scroll sideways inside the message instead of widening it.
  md.renderer.rules.table_open = function () {
    return '<div class="table-scroll" tabindex="0"><table>\n';
  };
  md.renderer.rules.table_close = function () {
    return "</table></div>\n";
  };

  // Task lists: "- [ ] todo" / "- [x] done" become disabled checkboxes.
  md.core.ruler.after("inline", "webui_task_lists", function (state) {
    var tokens = state.tokens;
    for (var i = 2; i < tokens.length; i++) {
      var inline = tokens[i];
      if (inline.type !== "inline" || tokens[i - 1].type !== "paragraph_open") continue;
      if (tokens[i - 2].type !== "list_item_open") continue;
      var first = inline.children && inline.children[0];
      if (!first || first.type !== "text") continue;
      var match = /^\[([ xX])\]\s+/.exec(first.content);
      if (!match) continue;
      first.content = first.content.slice(match[0].length);
      // The label names the checkbox for screen readers (and keeps the text with its box).
      var open = new state.Token("html_inline", "", 0);
      open.content =
        '<label class="task-list-label"><input type="checkbox" disabled' + (match[1] === " " ? "" : " checked") + "> ";
      var close = new state.Token("html_inline", "", 0);
      close.content = "</label>";
      inline.children.unshift(open);
      inline.children.push(close);
      tokens[i - 2].attrJoin("class", "task-list-item");
    }
  });

  // -- math: $…$, \(…\) inline; $$…$$, \[…\] display ----------------------------------------
  var texCache = new Map();
  function renderTex(tex, display) {
    var key = (display ? "D" : "I") + tex;
    if (texCache.has(key)) return texCache.get(key);
    var html;
    if (window.katex) {
      try {
        html = window.katex.renderToString(tex, {
          displayMode: display,
          throwOnError: false,
          trust: false,
          strict: false,
          maxSize: 50,
          maxExpand: 1000,
          output: "htmlAndMathml",
        });
      } catch (error) {
        html = null;
      }
    }
    if (!html) html = '<code class="math-source">' + escapeHtml(tex) + "</code>";
    if (texCache.size > 500) texCache.clear();
    texCache.set(key, html);
    return html;
  }

  function isSpace(code) {
    return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
  }
  function isDigit(code) {
    return code >= 0x30 && code <= 0x39;
  }

  function mathInline(state, silent) {
    var src = state.src;
    var start = state.pos;
    var max = state.posMax;
    var code = src.charCodeAt(start);
    var content, end, display;

    if (code === 0x5c /* \ */) {
      var bracket = src.charAt(start + 1);
      if (bracket !== "(" && bracket !== "[") return false;
      end = src.indexOf(bracket === "(" ? "\\)" : "\\]", start + 2);
      if (end < 0 || end + 2 > max) return false;
      content = src.slice(start + 2, end);
      display = bracket === "[";
      if (!content.trim()) return false;
      if (!silent) pushMath(state, content, display);
      state.pos = end + 2;
      return true;
    }
    if (code !== 0x24 /* $ */) return false;

    if (src.charCodeAt(start + 1) === 0x24) {
      end = src.indexOf("$$", start + 2);
      if (end < 0 || end + 2 > max) return false;
      content = src.slice(start + 2, end);
      if (!content.trim()) return false;
      if (!silent) pushMath(state, content, true);
      state.pos = end + 2;
      return true;
    }

    // Single $: "$x$" is math, "$5 and $6" is money. The opener needs a non-space after it,
    // the closer a non-space before it and no digit after it.
    if (start + 1 >= max || isSpace(src.charCodeAt(start + 1))) return false;
    var from = start + 1;
    for (;;) {
      end = src.indexOf("$", from);
      if (end < 0 || end >= max) return false;
      var before = src.charCodeAt(end - 1);
      if (before === 0x5c || isSpace(before) || isDigit(src.charCodeAt(end + 1))) {
        from = end + 1;
        continue;
      }
      break;
    }
    content = src.slice(start + 1, end);
    if (!silent) pushMath(state, content, false);
    state.pos = end + 1;
    return true;
  }

  function pushMath(state, content, display) {
    var token = state.push("math_inline", "math", 0);
    token.content = content;
    token.meta = { display: display };
  }

  function mathBlock(state, startLine, endLine, silent) {
    var pos = state.bMarks[startLine] + state.tShift[startLine];
    var max = state.eMarks[startLine];
    if (state.sCount[startLine] - state.blkIndent >= 4) return false;
    var src = state.src;
    var close;
    if (src.startsWith("$$", pos)) close = "$$";
    else if (src.startsWith("\\[", pos)) close = "\\]";
    else return false;

    var first = src.slice(pos + 2, max).trim();
    var lines = [];
    var next = startLine;
    var found = false;
    if (first.length >= 2 && first.endsWith(close)) {
      var inner = first.slice(0, -2);
      if (inner.indexOf(close) >= 0) return false; // "$$a$$ and $$b$$": leave it to the inline rule
      lines.push(inner);
      found = true;
    } else {
      // "\[" opens a block only alone on its line ("\[link\]" text is not math).
      if (close === "\\]" && first) return false;
      if (first) lines.push(first);
      for (next = startLine + 1; next < endLine; next++) {
        var lineStart = state.bMarks[next] + state.tShift[next];
        var lineEnd = state.eMarks[next];
        // TeX forbids blank lines in display math; stopping there keeps a stray "$$" from
        // swallowing the rest of the answer.
        if (lineStart >= lineEnd || state.isEmpty(next)) break;
        if (state.sCount[next] < state.blkIndent) break;
        var line = src.slice(lineStart, lineEnd).trim();
        if (line.endsWith(close)) {
          lines.push(line.slice(0, -2));
          found = true;
          break;
        }
        lines.push(src.slice(state.bMarks[next], lineEnd));
      }
    }
    var pending = !found && state.env && state.env.streaming;
    if (!found && !pending) return false;
    if (silent) return true;
    var token = state.push("math_block", "math", 0);
    token.block = true;
    token.content = lines.join("\n");
    token.map = [startLine, Math.min(next + 1, endLine)];
    token.meta = { pending: pending };
    state.line = Math.min(next + 1, endLine);
    return true;
  }

  md.inline.ruler.before("escape", "math_inline", mathInline);
  md.block.ruler.before("fence", "math_block", mathBlock, { alt: ["paragraph", "reference", "blockquote", "list"] });
  md.renderer.rules.math_inline = function (tokens, idx) {
    var token = tokens[idx];
    return token.meta.display
      ? '<span class="math-display">' + renderTex(token.content, true) + "</span>"
      : renderTex(token.content, false);
  };
  md.renderer.rules.math_block = function (tokens, idx) {
    var token = tokens[idx];
    if (token.meta && token.meta.pending) {
      return '<pre class="math-pending"><code>' + escapeHtml(token.content) + "</code></pre>\n";
    }
    return '<div class="math-display">' + renderTex(token.content, true) + "</div>\n";
  };

  // -- sanitizing ---------------------------------------------------------------------------
  var purify = createDOMPurify(window); // our own instance: hooks stay ours
  var PURIFY_CONFIG = {
    ADD_TAGS: ["semantics", "annotation"], // KaTeX's MathML (read by screen readers)
    ADD_ATTR: ["target", "encoding"],
    FORBID_TAGS: [
      "style", "form", "textarea", "select", "option", "iframe", "frame", "object", "embed",
      "link", "meta", "base", "template", "dialog", "video", "audio", "source", "track", "picture",
    ],
    FORBID_ATTR: ["srcdoc", "formaction", "action", "srcset", "ping", "autofocus", "xlink:href", "background"],
    ALLOW_UNKNOWN_PROTOCOLS: false,
  };
  var UNSAFE_STYLE = /url\s*\(|expression\s*\(|image-set|@import|behavior\s*:|-moz-binding|position\s*:/i;

  purify.addHook("afterSanitizeAttributes", function (node) {
    var style = node.getAttribute && node.getAttribute("style");
    // KaTeX positions glyphs with inline style (heights, margins, colours); nothing else may.
    if (style && UNSAFE_STYLE.test(style)) node.removeAttribute("style");
    var tag = node.nodeName;
    if (tag === "A" && node.hasAttribute("href")) {
      var href = node.getAttribute("href");
      if (!isAllowedUrl(href) || /^\s*data:/i.test(href)) node.removeAttribute("href");
      else if (isExternal(href)) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
      }
    } else if (tag === "A") {
      node.removeAttribute("target");
    }
    if (tag === "IMG" && !SAFE_DATA_IMAGE.test(node.getAttribute("src") || "")) node.removeAttribute("src");
    if (tag === "INPUT") {
      // Only task-list checkboxes exist in rendered markdown: make sure any input is one.
      node.setAttribute("type", "checkbox");
      node.setAttribute("disabled", "");
      node.removeAttribute("name");
      node.removeAttribute("value");
    }
    if (tag === "BUTTON") node.setAttribute("type", "button");
  });

  var FRAGMENT_CONFIG = Object.assign({ RETURN_DOM_FRAGMENT: true }, PURIFY_CONFIG);

  function sanitize(html) {
    return purify.sanitize(html, PURIFY_CONFIG);
  }

  // Chromium lays out one 100 KB unbroken word (a pasted base64 blob, minified code) in
  // seconds when it may wrap it; <wbr> every 80 characters makes it instant and, unlike a
  // zero-width space, is not part of the copied text.
  var LONG_RUN = /\S{160,}/g;
  var WBR_EVERY = 80;
  function breakLongWords(root) {
    var walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    var found = [];
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      LONG_RUN.lastIndex = 0;
      if (!LONG_RUN.test(node.data)) continue;
      var parent = node.parentElement;
      if (parent && parent.closest("pre, .katex, .math-display, .math-pending")) continue;
      found.push(node);
    }
    found.forEach(function (textNode) {
      var text = textNode.data;
      var pieces = [];
      var cursor = 0;
      var match;
      LONG_RUN.lastIndex = 0;
      while ((match = LONG_RUN.exec(text))) {
        for (var at = match.index + WBR_EVERY; at < match.index + match[0].length; at += WBR_EVERY) {
          pieces.push(text.slice(cursor, at));
          cursor = at;
        }
      }
      pieces.push(text.slice(cursor));
      var replacement = document.createDocumentFragment();
      pieces.forEach(function (piece, index) {
        if (index) replacement.appendChild(document.createElement("wbr"));
        replacement.appendChild(document.createTextNode(piece));
      });
      textNode.parentNode.replaceChild(replacement, textNode);
    });
  }

  /* Markdown → sanitized DOM fragment (no serialize-and-reparse round trip). */
  function renderFragment(text, env) {
    var fragment = purify.sanitize(md.render(String(text == null ? "" : text), env || {}), FRAGMENT_CONFIG);
    breakLongWords(fragment);
    return fragment;
  }

  function render(text) {
    var holder = document.createElement("div");
    holder.appendChild(renderFragment(text));
    return holder.innerHTML;
  }

  // -- highlighting -------------------------------------------------------------------------
  var AUTO_HIGHLIGHT_MAX = 5000;
  function highlightWithin(root) {
    var hljs = window.hljs;
    if (!hljs) return;
    var blocks = root.querySelectorAll(".code-block pre > code:not([data-highlighted])");
    for (var i = 0; i < blocks.length; i++) {
      var code = blocks[i];
      var text = code.textContent;
      var block = code.closest(".code-block");
      var lang = block && block.getAttribute("data-lang");
      var result = null;
      try {
        if (lang && hljs.getLanguage(lang)) {
          result = hljs.highlight(text, { language: lang, ignoreIllegals: true });
        } else if (text.length <= AUTO_HIGHLIGHT_MAX) {
          result = hljs.highlightAuto(text);
          if (result && result.language && !lang && result.relevance >= 5) {
            var label = block.querySelector(".code-lang");
            if (label) label.textContent = result.language;
          }
        }
      } catch (error) {
        result = null;
      }
      // highlight.js escapes the text itself; its output is only <span class="hljs-…">.
      if (result && result.value) code.innerHTML = result.value;
      code.classList.add("hljs");
      code.setAttribute("data-highlighted", "yes");
    }
  }

  function renderInto(element, text) {
    var fragment = renderFragment(text);
    highlightWithin(fragment); // before insertion: one layout, not one per block
    element.replaceChildren(fragment);
    return element;
  }

  // -- copy buttons (one delegated listener) ---------------------------------------------------
  function copyWithTextarea(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden-copy";
    area.style.position = "fixed";
    area.style.top = "0";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    var selection = document.getSelection();
    var previous = selection && selection.rangeCount ? selection.getRangeAt(0) : null;
    area.select();
    var ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (error) {
      ok = false;
    }
    area.remove();
    if (previous && selection) {
      selection.removeAllRanges();
      selection.addRange(previous);
    }
    return ok;
  }

  function copyText(text) {
    // navigator.clipboard exists only on secure origins; an intranet on plain http has none.
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () {
          return true;
        },
        function () {
          return copyWithTextarea(text);
        }
      );
    }
    return Promise.resolve(copyWithTextarea(text));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".code-copy");
    if (!button) return;
    var block = button.closest(".code-block");
    var code = block && block.querySelector("pre code");
    if (!code) return;
    copyText(code.textContent).then(function (ok) {
      var s = strings();
      button.textContent = ok ? s.copied : s.copyFailed;
      button.classList.toggle("copied", ok);
      clearTimeout(button._webuiCopyTimer);
      button._webuiCopyTimer = setTimeout(function () {
        button.textContent = s.copy;
        button.classList.remove("copied");
      }, 2000);
    });
  });

  // -- streaming ----------------------------------------------------------------------------
  var FENCE_OPEN = /^\s*(`{3,}|~{3,})(.*)$/;
  var LIST_ITEM = /^ {0,3}([-*+]|\d{1,9}[.)])(\s|$)/;

  /*
   * Incremental rendering: the text is cut into a stable prefix (complete top-level blocks,
   * each rendered once into its own `.md-block` that is never touched again) and a tail (the
   * last, still-growing block, re-rendered at most once per animation frame). A blank line
   * outside a code fence or math block ends a block, unless the next line is indented or
   * continues a list (then the block is not known to be complete yet).
   */
  var FULL_FINISH_MAX = 20000; // characters

  function createStream(element) {
    var text = "";
    var stableEnd = 0; // text[0:stableEnd] is rendered into committed blocks
    var scanPos = 0; // start of the first line not yet scanned
    var fence = null; // {ch, len} while inside a fenced code block
    var mathClose = null; // "$$" or "\\]" while inside a display-math block
    var pendingBoundary = false; // a blank line was seen outside fence/math
    var inList = false;
    var frame = 0;
    var tail = null;
    var finished = false;
    var stats = { appends: 0, tailRenders: 0, tailChars: 0, commits: 0 };

    function start() {
      element.replaceChildren();
      tail = document.createElement("div");
      tail.className = "md-tail";
      element.appendChild(tail);
      element.setAttribute("data-md-done", "");
      element.setAttribute("data-md-streaming", "");
    }

    function commit(end) {
      if (end <= stableEnd) return;
      var block = document.createElement("div");
      block.className = "md-block";
      var fragment = renderFragment(text.slice(stableEnd, end));
      highlightWithin(fragment); // final: highlight once, now
      block.appendChild(fragment);
      element.insertBefore(block, tail);
      stableEnd = end;
      stats.commits++;
    }

    function scanLine(line, lineStart) {
      if (fence) {
        var trimmed = line.trim();
        if (trimmed.length >= fence.len && trimmed.split("").every(function (c) {
          return c === fence.ch;
        })) fence = null;
        return;
      }
      if (mathClose) {
        if (!line.trim()) mathClose = null; // a blank line ends an unclosed display math
        else if (line.trim().endsWith(mathClose)) return void (mathClose = null);
        else return;
      }
      if (!line.trim()) {
        pendingBoundary = true;
        return;
      }
      var indented = /^[ \t]/.test(line);
      var listItem = LIST_ITEM.test(line);
      if (pendingBoundary) {
        pendingBoundary = false;
        if (!indented && !(listItem && inList)) commit(lineStart);
      }
      if (!indented) inList = listItem;
      var open = FENCE_OPEN.exec(line);
      if (open && !(open[1][0] === "`" && open[2].indexOf("`") >= 0)) {
        fence = { ch: open[1][0], len: open[1].length };
        return;
      }
      var body = line.trim();
      var opener = body.startsWith("$$") ? "$$" : body.startsWith("\\[") ? "\\]" : null;
      if (opener === "\\]" && body !== "\\[") opener = null;
      if (opener) {
        var rest = body.slice(2);
        if (!(rest.length >= 2 && rest.endsWith(opener))) mathClose = opener;
      }
    }

    function renderTail() {
      var source = text.slice(stableEnd);
      if (fence) {
        // Close the open fence virtually so code looks like code while it streams; a
        // half-typed closing fence ("``") at the very end is hidden rather than shown as code.
        var partial = text.slice(scanPos);
        if (/^\s*[`~]+$/.test(partial)) source = source.slice(0, source.length - partial.length);
        if (!source.endsWith("\n")) source += "\n";
        source += fence.ch.repeat(fence.len);
      }
      tail.replaceChildren(renderFragment(source, { streaming: true }));
      stats.tailRenders++;
      stats.tailChars += source.length;
    }

    function flush() {
      if (frame) {
        cancelAnimationFrame(frame);
        frame = 0;
      }
      if (finished) return;
      for (;;) {
        var newline = text.indexOf("\n", scanPos);
        if (newline < 0) break;
        var lineStart = scanPos;
        scanPos = newline + 1;
        scanLine(text.slice(lineStart, newline), lineStart);
      }
      renderTail();
    }

    function schedule() {
      if (frame || finished) return;
      frame = requestAnimationFrame(function () {
        frame = 0;
        flush();
      });
    }

    start();
    return {
      append: function (delta) {
        if (finished || !delta) return;
        text += delta;
        stats.appends++;
        schedule();
      },
      flush: flush,
      finish: function () {
        if (frame) cancelAnimationFrame(frame);
        frame = 0;
        // Short replies get one full pass, so lists split across blocks and reference links
        // defined late come out exactly as a reload shows them. Long ones keep their blocks
        // and only render the tail as final: a full pass would stall the page for a moment.
        if (text.length <= FULL_FINISH_MAX) {
          finished = true;
          renderInto(element, text);
        } else {
          flush();
          finished = true;
          highlightWithin(tail);
        }
        element.removeAttribute("data-md-streaming");
        element.setAttribute("data-md-done", "");
      },
      reset: function (value) {
        if (frame) cancelAnimationFrame(frame);
        frame = 0;
        text = "";
        stableEnd = scanPos = 0;
        fence = mathClose = null;
        pendingBoundary = inList = finished = false;
        start();
        if (value) {
          text = String(value);
          flush();
        }
      },
      text: function () {
        return text;
      },
      stats: stats,
    };
  }

  // -- server-rendered messages ---------------------------------------------------------------
  function enhanceAll(root) {
    root = root || document;
    var elements = [];
    if (root.matches && root.matches("[data-md]:not([data-md-done])")) elements.push(root);
    if (root.querySelectorAll) {
      elements = elements.concat(Array.prototype.slice.call(root.querySelectorAll("[data-md]:not([data-md-done])")));
    }
    elements.forEach(function (element) {
      // Template indentation around {{ message.content }} must not turn into a code block.
      var text = element.textContent.replace(/^\s*\n/, "").replace(/\s+$/, "");
      renderInto(element, text);
      element.setAttribute("data-md-done", "");
    });
    return elements.length;
  }

  window.WebuiMarkdown = {
    render: render,
    renderInto: renderInto,
    createStream: createStream,
    enhanceAll: enhanceAll,
    copyText: copyText,
    sanitize: sanitize,
    highlightWithin: highlightWithin,
    markdownIt: md,
  };
})();
