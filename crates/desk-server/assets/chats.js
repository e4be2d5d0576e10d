// linedesk: the chat pages (LINEチャット一覧 and LINEチャット詳細; templates/chats*.html).
//
// - Live (B2): one EventSource on /api/v1/events. `conversation` and `message` events
//   re-fetch the parts of the page that changed as server-rendered fragments (the server
//   escapes every value; this script never builds HTML from data). `resync`, and every
//   reconnect after an error, reloads everything.
// - Changes go through the JSON API with the session's CSRF token (X-CSRF-Token).
// - Japanese input: Enter sends, Shift+Enter is a newline, and an Enter that confirms an
//   IME conversion (isComposing / keyCode 229) never sends.
// - Optional sound and desktop notification for new customer messages, remembered in
//   localStorage.
(function () {
  "use strict";

  var strings = document.getElementById("chats-strings");
  if (!strings) {
    return;
  }
  function str(name) {
    return strings.dataset[name] || "";
  }
  function $(id) {
    return document.getElementById(id);
  }

  function csrfToken() {
    if (window.linedesk && window.linedesk.csrfToken) {
      return window.linedesk.csrfToken();
    }
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function toLogin() {
    window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  // GET a fragment rendered by the server; returns the element with `id`, adopted into
  // this document, or null (logged out: we go to the login page).
  async function fragment(url, id) {
    var resp = await fetch(url, {
      headers: { "HX-Request": "true" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (resp.status === 401) {
      var to = resp.headers.get("HX-Redirect");
      if (to) {
        window.location.href = to;
      } else {
        toLogin();
      }
      return null;
    }
    if (!resp.ok) {
      throw new Error("GET " + url + ": HTTP " + resp.status);
    }
    var doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    var el = doc.getElementById(id);
    return el ? document.adoptNode(el) : null;
  }

  // A JSON API call: {ok, status, data}. Throws only when the server cannot be reached.
  async function api(method, url, body) {
    var headers = { "X-CSRF-Token": csrfToken(), Accept: "application/json" };
    var opts = { method: method, headers: headers, credentials: "same-origin" };
    if (body instanceof FormData) {
      opts.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var resp = await fetch(url, opts);
    var data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (resp.status === 401) {
      toLogin();
    }
    return { ok: resp.ok, status: resp.status, data: data };
  }

  function errorCode(r) {
    return r.data && r.data.error ? r.data.error.code : "";
  }
  function errorMessage(r) {
    return r.data && r.data.error && r.data.error.message ? r.data.error.message : "HTTP " + r.status;
  }

  // Runs `fn` soon, never twice at once; calls that come in while it runs make it run
  // once more afterwards (so the last change is always shown).
  function refresher(fn) {
    var running = false;
    var again = false;
    var timer = null;
    async function run() {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        await fn();
      } catch (e) {
        console.warn("linedesk refresh:", e);
      } finally {
        running = false;
        if (again) {
          again = false;
          schedule(0);
        }
      }
    }
    function schedule(delay) {
      clearTimeout(timer);
      timer = setTimeout(run, delay === undefined ? 100 : delay);
    }
    return schedule;
  }

  // ---- notifications (sound and desktop) ------------------------------------------------

  var NOTIFY_KEY = "linedesk.notify";
  var notifyToggle = $("notify-toggle");
  var audio = null;

  function notifyOn() {
    try {
      return window.localStorage.getItem(NOTIFY_KEY) === "on";
    } catch (e) {
      return false;
    }
  }

  function showNotifyState() {
    if (!notifyToggle) {
      return;
    }
    var on = notifyOn();
    notifyToggle.setAttribute("aria-pressed", on ? "true" : "false");
    notifyToggle.querySelector(".notify-label").textContent = on ? str("notifyEnabled") : str("notifyEnable");
  }

  function audioContext() {
    var Ctx = window.AudioContext || window.webkitAudioContext;
    if (!audio && Ctx) {
      audio = new Ctx();
    }
    if (audio && audio.state === "suspended") {
      audio.resume().catch(function () {});
    }
    return audio;
  }

  // A short two-tone beep made with WebAudio (no sound file).
  function beep() {
    var ctx = audioContext();
    if (!ctx) {
      return;
    }
    var t = ctx.currentTime + 0.01;
    [
      [0, 880],
      [0.17, 1175],
    ].forEach(function (tone) {
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = tone[1];
      gain.gain.setValueAtTime(0.0001, t + tone[0]);
      gain.gain.exponentialRampToValueAtTime(0.18, t + tone[0] + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + tone[0] + 0.15);
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start(t + tone[0]);
      osc.stop(t + tone[0] + 0.16);
    });
  }

  if (notifyToggle) {
    showNotifyState();
    notifyToggle.addEventListener("click", function () {
      var on = !notifyOn();
      try {
        window.localStorage.setItem(NOTIFY_KEY, on ? "on" : "off");
      } catch (e) {
        /* private mode: the choice lasts for this page only */
      }
      if (on) {
        audioContext(); // created on the click, so the browser lets it play later
        if ("Notification" in window && Notification.permission === "default") {
          Notification.requestPermission().catch(function () {});
        }
      }
      showNotifyState();
    });
    // Browsers start audio only after a user gesture: resume on the first one.
    var wake = function () {
      if (notifyOn()) {
        audioContext();
      }
    };
    document.addEventListener("pointerdown", wake, { once: true });
    document.addEventListener("keydown", wake, { once: true });
  }

  var announced = {};

  // A message event: if it is a new message from a customer, beep and notify.
  async function announce(conversationId, messageId) {
    if (!notifyOn() || announced[messageId]) {
      return;
    }
    announced[messageId] = true;
    var resp = await fetch("/chats/" + conversationId + "/notice/" + messageId, {
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!resp.ok) {
      return;
    }
    var n = await resp.json();
    if (!n.incoming || !n.fresh) {
      return;
    }
    document.body.dataset.alerts = String(Number(document.body.dataset.alerts || 0) + 1);
    beep();
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        var note = new Notification(n.title, { body: n.body, tag: "linedesk-" + conversationId });
        note.onclick = function () {
          window.focus();
          window.location.href = n.url;
        };
      } catch (e) {
        /* some browsers only notify from a service worker */
      }
    }
  }

  // ---- the list ---------------------------------------------------------------------------

  var baseTitle = document.title;

  function unreadByRow() {
    var out = {};
    document.querySelectorAll("#chat-results tr[data-id]").forEach(function (tr) {
      out[tr.dataset.id] = Number(tr.dataset.unread || 0);
    });
    return out;
  }

  function showUnreadInTitle() {
    var total = 0;
    var rows = unreadByRow();
    Object.keys(rows).forEach(function (k) {
      total += rows[k];
    });
    document.title = total > 0 ? "(" + total + ") " + baseTitle : baseTitle;
  }

  var refreshList = refresher(async function () {
    var current = $("chat-results");
    if (!current) {
      return;
    }
    var before = unreadByRow();
    var fresh = await fragment(current.dataset.rowsHref, "chat-results");
    if (!fresh) {
      return;
    }
    current.replaceWith(fresh);
    fresh.querySelectorAll("tr[data-id]").forEach(function (tr) {
      var was = before[tr.dataset.id];
      if (was === undefined || Number(tr.dataset.unread) > was) {
        tr.classList.add("is-new");
      }
    });
    showUnreadInTitle();
  });

  if ($("chat-results")) {
    showUnreadInTitle();
  }

  // ---- the detail -------------------------------------------------------------------------

  var detail = $("chat-detail");
  var chatId = detail ? detail.dataset.id : null;
  var textarea = $("chat-text");
  var fileInput = $("chat-file");
  var sendButton = $("chat-send");
  var sendHint = $("chat-send-hint");
  var chatError = $("chat-error");
  var flashBox = $("chat-flash");
  var scroller = $("history-scroll");
  var sendingIndicator = $("chat-sending");
  var fileName = $("chat-file-name");
  var filePreview = $("chat-file-preview");
  var fileClear = $("chat-file-clear");
  // Sends go out one after another, in the order the agent sent them; the field is free
  // for the next message at once.
  var sendQueue = Promise.resolve();
  var inFlight = 0;
  var flashTimer = null;

  function flash(text, isError) {
    if (!flashBox) {
      return;
    }
    clearTimeout(flashTimer);
    flashBox.textContent = text;
    flashBox.className = "chat-flash flash " + (isError ? "flash-error" : "flash-ok");
    flashBox.setAttribute("role", isError ? "alert" : "status");
    flashBox.hidden = false;
    if (!isError) {
      flashTimer = setTimeout(function () {
        flashBox.hidden = true;
      }, 5000);
    }
  }

  function showError(text) {
    if (!chatError) {
      return;
    }
    chatError.textContent = text;
    chatError.hidden = !text;
  }

  function canSend() {
    var header = $("chat-header");
    return !!header && header.dataset.canSend === "true";
  }

  // The composer follows the header: enabled for the handling agent only, with a hint why not.
  function applyComposer() {
    var header = $("chat-header");
    if (!header || !sendButton) {
      return;
    }
    var can = canSend();
    textarea.disabled = !can;
    fileInput.disabled = !can;
    sendButton.disabled = !can;
    sendingIndicator.hidden = inFlight === 0;
    var hint = header.dataset.sendHint || "";
    sendHint.textContent = hint;
    sendHint.hidden = !hint;
  }

  // Why the API refused, in the agent's language where we know the reason.
  async function explain(r) {
    var code = errorCode(r);
    if (r.status === 409 && code === "held_by_other") {
      var c = await api("GET", "/api/v1/conversations/" + chatId);
      refreshHeader(0);
      if (c.ok && c.data && c.data.agent) {
        return str("heldBy").replace("{agent}", c.data.agent.name);
      }
      return errorMessage(r);
    }
    if (r.status === 409 && code === "not_in_progress") {
      refreshHeader(0);
      return str("notInProgress");
    }
    return str("errorPrefix") + ": " + errorMessage(r);
  }

  function nearBottom() {
    return !scroller || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }
  function toBottom() {
    if (scroller) {
      scroller.scrollTop = scroller.scrollHeight;
    }
  }

  var stickToBottom = false;

  var refreshHeader = refresher(async function () {
    var current = $("chat-header");
    var fresh = await fragment("/chats/" + chatId + "/header", "chat-header");
    if (!fresh || !current) {
      return;
    }
    current.replaceWith(fresh);
    applyComposer();
  });

  var refreshHistory = refresher(async function () {
    var current = $("chat-history");
    var follow = stickToBottom || nearBottom();
    stickToBottom = false;
    var fresh = await fragment(detail.dataset.historyHref, "chat-history");
    if (!fresh || !current) {
      return;
    }
    // Keep the messages that did not change (their images stay loaded).
    var old = {};
    current.querySelectorAll("li[data-id]").forEach(function (li) {
      old[li.dataset.id] = li;
    });
    Array.prototype.slice.call(fresh.children).forEach(function (li) {
      var kept = li.dataset.id && old[li.dataset.id];
      if (kept && kept.outerHTML === li.outerHTML) {
        fresh.replaceChild(kept, li);
      }
    });
    current.replaceWith(fresh);
    if (follow) {
      toBottom();
    }
  });

  var markRead = refresher(async function () {
    if (document.visibilityState === "visible") {
      await api("POST", "/api/v1/conversations/" + chatId + "/read", {});
    }
  });

  // Shows the chosen image's name and a thumbnail (from a blob URL, never markup).
  function showFile() {
    var file = fileInput.files && fileInput.files[0];
    if (filePreview.src) {
      URL.revokeObjectURL(filePreview.src);
      filePreview.removeAttribute("src");
    }
    fileName.textContent = file ? file.name : fileName.dataset.none;
    fileClear.hidden = !file;
    filePreview.hidden = !(file && /^image\//.test(file.type));
    if (!filePreview.hidden) {
      filePreview.src = URL.createObjectURL(file);
    }
  }

  function clearFile() {
    fileInput.value = "";
    showFile();
  }

  // A send that failed gives the agent their text (and image) back.
  function restore(text, file) {
    if (text && text.trim()) {
      textarea.value = textarea.value ? text + "\n" + textarea.value : text;
    }
    if (file && !(fileInput.files && fileInput.files.length)) {
      try {
        var dt = new DataTransfer();
        dt.items.add(file);
        fileInput.files = dt.files;
      } catch (e) {
        /* the agent picks it again */
      }
      showFile();
    }
  }

  async function post(text, file) {
    var url = "/api/v1/conversations/" + chatId + "/messages";
    try {
      if (file) {
        var form = new FormData();
        form.append("image", file, file.name);
        var r = await api("POST", url, form);
        if (!r.ok) {
          showError(await explain(r));
          restore(text, file);
          return;
        }
      }
      if (text.trim()) {
        var r2 = await api("POST", url, { text: text });
        if (!r2.ok) {
          showError(await explain(r2));
          restore(text, null);
        }
      }
    } catch (e) {
      showError(str("network"));
      restore(text, file);
    }
  }

  function send() {
    if (!canSend()) {
      return;
    }
    var text = textarea.value;
    var file = fileInput.files && fileInput.files[0];
    if (!file && !text.trim()) {
      return;
    }
    textarea.value = "";
    clearFile();
    showError("");
    inFlight += 1;
    applyComposer();
    sendQueue = sendQueue.then(function () {
      return post(text, file).finally(function () {
        inFlight -= 1;
        applyComposer();
        stickToBottom = true;
        refreshHistory(0);
      });
    });
  }

  if (detail) {
    var composer = $("composer");
    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      send();
    });
    fileInput.addEventListener("change", showFile);
    fileClear.addEventListener("click", clearFile);
    textarea.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") {
        return;
      }
      // The Enter that confirms an IME conversion (Japanese input) is not a send.
      if (event.isComposing || event.keyCode === 229) {
        return;
      }
      if (event.shiftKey || event.altKey) {
        return; // a newline
      }
      event.preventDefault();
      send();
    });

    document.addEventListener("click", async function (event) {
      var statusButton = event.target.closest("[data-set-status]");
      if (statusButton && detail.contains(statusButton)) {
        var status = statusButton.dataset.setStatus;
        statusButton.disabled = true;
        try {
          var r = await api("POST", "/api/v1/conversations/" + chatId + "/status", { status: status });
          if (r.ok) {
            flash(str(status === "in_progress" ? "started" : status === "done" ? "done" : "reopened"), false);
          } else {
            flash(await explain(r), true);
          }
        } catch (e) {
          flash(str("network"), true);
        } finally {
          statusButton.disabled = false;
          refreshHeader(0);
        }
        return;
      }
      var resend = event.target.closest("[data-resend]");
      if (resend && detail.contains(resend)) {
        resend.disabled = true;
        try {
          var rr = await api("POST", "/api/v1/messages/" + resend.dataset.resend + "/resend", {});
          if (!rr.ok) {
            showError(await explain(rr));
          } else {
            showError("");
          }
        } catch (e) {
          showError(str("network"));
        } finally {
          refreshHistory(0);
        }
      }
    });

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") {
        markRead(0);
      }
    });

    toBottom();
    markRead(0);
  }

  // ---- live updates -----------------------------------------------------------------------

  var live = $("live");
  function showLive(on) {
    if (!live) {
      return;
    }
    live.dataset.live = on ? "on" : "off";
    live.querySelector(".live-text").textContent = on ? str("liveOn") : str("liveOff");
  }

  function reloadAll() {
    if ($("chat-results")) {
      refreshList(0);
    }
    if (detail) {
      refreshHeader(0);
      refreshHistory(0);
    }
  }

  function onConversation(id) {
    if ($("chat-results")) {
      refreshList();
    }
    if (detail && String(id) === chatId) {
      refreshHeader();
    }
  }

  function onMessage(conversationId, messageId) {
    if ($("chat-results")) {
      refreshList();
    }
    if (detail && String(conversationId) === chatId) {
      refreshHistory();
      markRead(400);
    }
    announce(conversationId, messageId).catch(function () {});
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (e) {
      return {};
    }
  }

  var source = null;
  var hadError = false;

  function connect() {
    source = new EventSource("/api/v1/events");
    source.addEventListener("open", function () {
      showLive(true);
      if (hadError) {
        hadError = false;
        reloadAll();
      }
    });
    // The first event of a new connection: catch up on what changed since the page was
    // rendered (before the stream existed).
    source.addEventListener("ready", function () {
      showLive(true);
      reloadAll();
    });
    source.addEventListener("resync", reloadAll);
    source.addEventListener("conversation", function (event) {
      onConversation(parse(event).id);
    });
    source.addEventListener("message", function (event) {
      var d = parse(event);
      onMessage(d.conversation_id, d.id);
    });
    source.addEventListener("error", function () {
      showLive(false);
      hadError = true;
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. logged out): try again later; a fragment
        // fetch on reconnect sends a logged-out browser to the login page.
        setTimeout(connect, 5000);
      }
    });
  }

  if (window.EventSource) {
    connect();
  }
})();
