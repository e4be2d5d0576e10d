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
// - One press of 送信 is one request: the text and the chosen image go together, in that
//   order (the API keeps them together as one group).
// - The history keeps the newest message in view — after images load too — while the agent
//   is at the bottom, and leaves them where they are once they scrolled up to read.
// - Everything shown comes from the locale files: API errors are worded from their `key`
//   (data-errors), never from the API's English `message`.
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
      headers: { "X-Fragment": "1" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (resp.status === 401) {
      var to = resp.headers.get("X-Login");
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

  var errorStrings = {};
  try {
    errorStrings = JSON.parse(strings.dataset.errors || "{}");
  } catch (e) {
    errorStrings = {};
  }

  // An API error in the page's language: its locale key with its arguments filled in; an
  // error the page does not know says so with its code (never the API's English text).
  function worded(r) {
    var e = r.data && r.data.error;
    if (e && e.key && errorStrings[e.key]) {
      var text = errorStrings[e.key];
      var args = e.args || {};
      Object.keys(args).forEach(function (k) {
        text = text.split("{" + k + "}").join(String(args[k]));
      });
      return text;
    }
    return str("unknownError").replace("{code}", e && e.code ? e.code : "HTTP " + r.status);
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

  // Why the API refused, in the agent's language; `sending` says 送信できませんでした first.
  function explain(r, sending) {
    var code = errorCode(r);
    if (r.status === 409 && (code === "held_by_other" || code === "not_in_progress")) {
      refreshHeader(0);
      return worded(r);
    }
    return sending ? str("sendFailed").replace("{reason}", worded(r)) : worded(r);
  }

  function nearBottom() {
    return !scroller || scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }
  function toBottom() {
    if (scroller) {
      scroller.scrollTop = scroller.scrollHeight;
      autoTop = scroller.scrollTop;
    }
  }

  // Whether the agent is at the bottom of the history (the newest message in view). Only
  // their own scrolling changes it (scroll anchoring is off in chats.css, so content that
  // grows — an image that loads — never moves the view by itself); while it holds, the view
  // follows every growth and every new message.
  var pinned = true;
  var stickToBottom = false;
  // Where the desk itself last scrolled to. The scroll event of that scroll arrives later,
  // possibly after an image grew the history again: it must not read as the agent leaving
  // the bottom. Only a scroll above this point (the agent's own) can unpin.
  var autoTop = 0;

  // Next to 送信: what happens if the agent sends now (Reply mode: whether a reply token is
  // still usable, counting down; Push mode: at once).
  function showSendWhen() {
    var el = $("send-when");
    var header = $("chat-header");
    if (!el || !header) {
      return;
    }
    if (!canSend()) {
      el.hidden = true;
      return;
    }
    var text;
    var open = true;
    if (header.dataset.mode === "push") {
      text = str("pushNow");
    } else {
      var left = Math.floor((Number(header.dataset.replyUntil || 0) - Date.now()) / 1000);
      open = left > 0;
      text = open ? str("replyOpen").replace("{secs}", String(left)) : str("replyClosed");
    }
    el.textContent = text;
    el.dataset.open = open ? "true" : "false";
    el.hidden = false;
  }
  function keepPinned() {
    if (pinned) {
      toBottom();
    }
  }
  var resizeWatch = window.ResizeObserver ? new ResizeObserver(keepPinned) : null;
  function watchHistory() {
    var list = $("chat-history");
    if (resizeWatch && list) {
      resizeWatch.disconnect();
      resizeWatch.observe(list);
    }
  }

  // A sticker shows LINE's image once the browser loaded it; until then, and when it
  // cannot (offline, unknown), its label.
  function stickerState(img) {
    var box = img.closest(".msg-sticker");
    if (!box || !img.complete) {
      return;
    }
    box.classList.toggle("is-loaded", img.naturalWidth > 0);
    box.classList.toggle("is-failed", img.naturalWidth === 0);
  }
  function checkStickers() {
    document.querySelectorAll("img.sticker-img").forEach(stickerState);
  }

  var refreshHeader = refresher(async function () {
    var current = $("chat-header");
    var fresh = await fragment("/chats/" + chatId + "/header", "chat-header");
    if (!fresh || !current) {
      return;
    }
    current.replaceWith(fresh);
    applyComposer();
    showSendWhen();
  });

  var refreshHistory = refresher(async function () {
    var current = $("chat-history");
    var follow = stickToBottom || pinned;
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
    watchHistory();
    checkStickers();
    if (follow) {
      pinned = true;
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
    var note = $("chat-file-note");
    if (note) {
      note.hidden = !file;
    }
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

  // One press of 送信 is one request: the text first, then the image, as composed; the
  // desk writes them as one group (all or nothing) and never splits them across replies.
  async function post(text, file) {
    var url = "/api/v1/conversations/" + chatId + "/messages";
    try {
      var body;
      if (file) {
        body = new FormData();
        if (text.trim()) {
          body.append("text", text);
        }
        body.append("image", file, file.name);
      } else {
        body = { text: text };
      }
      var r = await api("POST", url, body);
      if (!r.ok) {
        showError(explain(r, true));
        restore(text, file);
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

    // 完了/未読 with messages still waiting: 取り消す, そのまま送る, or 戻る (nothing changes).
    var unsentDialog = $("unsent-dialog");
    function chooseUnsent(count) {
      return new Promise(function (resolve) {
        if (!unsentDialog || !unsentDialog.showModal) {
          resolve("keep");
          return;
        }
        var body = $("unsent-body");
        body.textContent = body.dataset.template.replace("{count}", String(count));
        unsentDialog.returnValue = "";
        unsentDialog.addEventListener(
          "close",
          function () {
            resolve(unsentDialog.returnValue || "back");
          },
          { once: true }
        );
        unsentDialog.showModal();
        $("unsent-keep").focus();
      });
    }

    document.addEventListener("click", async function (event) {
      var statusButton = event.target.closest("[data-set-status]");
      if (statusButton && detail.contains(statusButton)) {
        var status = statusButton.dataset.setStatus;
        var payload = { status: status };
        var header = $("chat-header");
        var waiting = header ? Number(header.dataset.waiting || 0) : 0;
        if (status !== "in_progress" && waiting > 0) {
          var choice = await chooseUnsent(waiting);
          if (choice !== "cancel" && choice !== "keep") {
            return;
          }
          payload.unsent = choice;
        }
        statusButton.disabled = true;
        try {
          var r = await api("POST", "/api/v1/conversations/" + chatId + "/status", payload);
          if (r.ok) {
            var done = str(status === "in_progress" ? "started" : status === "done" ? "done" : "reopened");
            flash(payload.unsent === "cancel" ? done + "　" + str("cancelled") : done, false);
          } else {
            flash(explain(r, false), true);
          }
        } catch (e) {
          flash(str("network"), true);
        } finally {
          statusButton.disabled = false;
          refreshHeader(0);
          refreshHistory(0);
        }
        return;
      }
      var resend = event.target.closest("[data-resend]");
      if (resend && detail.contains(resend)) {
        resend.disabled = true;
        try {
          var rr = await api("POST", "/api/v1/messages/" + resend.dataset.resend + "/resend", {});
          if (!rr.ok) {
            showError(explain(rr, true));
          } else {
            showError("");
          }
        } catch (e) {
          showError(str("network"));
        } finally {
          refreshHistory(0);
        }
        return;
      }
      // 取消: the agent takes back a message that still waits.
      var cancel = event.target.closest("[data-cancel]");
      if (cancel && detail.contains(cancel)) {
        if (!window.confirm(str("cancelConfirm"))) {
          return;
        }
        cancel.disabled = true;
        try {
          var rc = await api("POST", "/api/v1/messages/" + cancel.dataset.cancel + "/cancel", {});
          showError(rc.ok ? "" : explain(rc, false));
        } catch (e) {
          showError(str("network"));
        } finally {
          refreshHistory(0);
          refreshHeader(0);
        }
      }
    });

    scroller.addEventListener("scroll", function () {
      if (pinned && scroller.scrollTop >= autoTop - 2) {
        return;
      }
      pinned = nearBottom();
    });
    // Images (and stickers) that load grow the history: follow while pinned.
    scroller.addEventListener(
      "load",
      function (event) {
        if (event.target.matches && event.target.matches("img.sticker-img")) {
          stickerState(event.target);
        }
        keepPinned();
      },
      true
    );
    scroller.addEventListener(
      "error",
      function (event) {
        if (event.target.matches && event.target.matches("img.sticker-img")) {
          stickerState(event.target);
        }
      },
      true
    );
    watchHistory();
    checkStickers();
    showSendWhen();
    setInterval(showSendWhen, 1000);

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
      // A message moves the mode line (a reply token came or was used) and the count of
      // waiting messages.
      refreshHeader();
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
