// Live task progress over Socket.IO: a small module any page can include.
//   <script src="/static/vendor/socket.io-4.8.4.min.js"></script>
//   <script src="/static/js/progress.js"></script>
//   TaskProgress.mount(listElement, {initial: [...events], cancelUrl: fn(id), resultUrl: fn(id)})
// The operator's page listens to `admin_task` instead ({event: 'admin_task', retryUrl: fn(id)}).
// A page's list mounts itself from its data attributes (the pages' policy allows no inline
// script): <ul data-task-list data-event="…" data-cancel-url="/…/__ID__/cancel" …>, with the
// initial events in <script type="application/json" id="initial-tasks">.
// Protocol: docs/protocol.md. The server pushes `task_progress` events to the logged-in user;
// every reconnect (with backoff) resumes from the last seq received without a gap, so nothing
// is lost while the connection was down, and nothing is shown twice.
(function (global) {
  'use strict';

  var STATUS_TEXT = {
    queued: 'queued', running: 'running', succeeded: 'done', failed: 'failed', cancelled: 'cancelled'
  };
  var FINISHED = { succeeded: true, failed: true, cancelled: true };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return '';
    if (value < 60) return Math.round(value) + ' s';
    var m = Math.floor(value / 60);
    return m + ' min ' + Math.round(value - m * 60) + ' s';
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name=csrf-token]');
    return meta ? meta.content : '';
  }

  function postJSON(url, body) {
    return fetch(url, {
      method: 'POST',
      body: body,
      headers: { Accept: 'application/json', 'X-CSRFToken': csrfToken() },
      credentials: 'same-origin'
    }).then(function (response) {
      // Not every answer is the app's JSON (a proxy's error page is not): say what it means.
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (response.ok) return data;
        if (data.error) throw new Error(data.error);
        if (response.status === 503) throw new Error('The service is unavailable right now; please try again in a moment.');
        throw new Error('The server answered ' + response.status + '.');
      });
    });
  }

  function createItem(event, options) {
    var item = el('li', 'task');
    item.dataset.taskId = event.task_id;
    var head = el('div', 'task-head');
    var owner = event.username || (event.user_id !== undefined ? 'user #' + event.user_id : '');
    var title = el('span', 'task-name', owner ? event.name + ' · ' + owner : event.name);
    title.id = 'task-' + event.task_id + '-name';
    head.appendChild(title);
    head.appendChild(el('span', 'task-status'));
    var bar = el('div', 'progress');
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-labelledby', title.id);
    bar.appendChild(el('div', 'progress-fill'));
    var actions = el('div', 'task-actions');
    // A button that posts to the task's URL; the next pushed event shows what came of it.
    function action(label, className, url) {
      var button = el('button', 'link ' + className, label);
      button.type = 'button';
      button.setAttribute('aria-label', label + ' ' + event.name);
      button.addEventListener('click', function () {
        button.disabled = true;
        postJSON(url(event.task_id)).catch(function (err) {
          item.querySelector('.task-error').textContent = err.message;
        }).then(function () { button.disabled = false; });
      });
      actions.appendChild(button);
    }
    action('Cancel', 'task-cancel', options.cancelUrl);
    if (options.resultUrl) {
      var download = el('a', 'task-result', 'Download result');
      download.href = options.resultUrl(event.task_id);
      actions.appendChild(download);
    }
    if (options.retryUrl) action('Retry', 'task-retry', options.retryUrl);
    item.appendChild(head);
    item.appendChild(bar);
    item.appendChild(el('p', 'task-message'));
    item.appendChild(el('p', 'task-meta'));
    item.appendChild(el('p', 'task-error error'));
    item.appendChild(actions);
    return item;
  }

  function render(item, event) {
    var pct = Math.max(0, Math.min(100, event.progress | 0));
    var status = STATUS_TEXT[event.status] || event.status;
    var bar = item.querySelector('[role=progressbar]');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.setAttribute('aria-valuetext', pct + '% ' + status);
    bar.querySelector('.progress-fill').style.width = pct + '%';
    item.dataset.status = event.status;
    item.querySelector('.task-status').textContent = pct + '% · ' + status;

    var text = event.message || '';
    if (event.total) text = 'Step ' + event.step + '/' + event.total + (text ? ' — ' + text : '');
    item.querySelector('.task-message').textContent = text;

    var meta = [];
    if (event.max_attempts > 1) meta.push('attempt ' + event.attempt + ' of ' + event.max_attempts);
    if (event.status === 'running' && event.rate) meta.push(event.rate.toFixed(1) + ' steps/s');
    if (event.status === 'running' && event.eta !== null && event.eta !== undefined) meta.push(seconds(event.eta) + ' left');
    if (FINISHED[event.status] && event.duration !== null) meta.push('took ' + seconds(event.duration));
    item.querySelector('.task-meta').textContent = meta.join(' · ');
    item.querySelector('.task-error').textContent = event.error || '';

    item.querySelector('.task-cancel').hidden = !!FINISHED[event.status];
    var download = item.querySelector('.task-result');
    if (download) download.hidden = !(event.status === 'succeeded' && event.has_result_file);
    var retry = item.querySelector('.task-retry');
    if (retry) retry.hidden = event.status !== 'failed';
  }

  // The resume point: the highest seq received with nothing missing below it. Events of two
  // tasks may arrive slightly out of order, so seqs past a gap wait in `above`.
  function Watermark() {
    this.value = null;
    this.above = {};
  }
  Watermark.prototype.reset = function (value) { this.value = value; this.above = {}; };
  Watermark.prototype.saw = function (seq) {
    if (this.value === null || seq <= this.value) return;
    this.above[seq] = true;
    while (this.above[this.value + 1]) {
      delete this.above[this.value + 1];
      this.value += 1;
    }
  };

  function mount(list, options) {
    options = options || {};
    var root = list.closest('section') || document;
    var statusLine = root.querySelector('[data-connection-status]');
    var empty = root.querySelector('[data-empty]');
    var shown = {};  // task_id -> {seq, ts} of the state shown; older states are ignored
    var watermark = new Watermark();

    function setStatus(text, state) {
      if (!statusLine) return;
      statusLine.textContent = text;
      statusLine.dataset.state = state;
    }

    // Only a user's own stream has one seq sequence to resume from; the operator's view does not.
    var eventName = options.event || 'task_progress';
    var resumes = eventName === 'task_progress';

    // Stored events advance by seq; volatile ticks repeat their stored event's seq and are
    // newer than it (and than earlier ticks) by their ts.
    function isNewer(event) {
      var last = shown[event.task_id];
      if (!last) return true;
      if (event.seq !== last.seq) return event.seq > last.seq;
      return !!event.volatile && event.ts >= last.ts;
    }

    function show(event, atEnd) {
      if (resumes && !event.volatile) watermark.saw(event.seq);
      if (!isNewer(event)) return;
      shown[event.task_id] = { seq: event.seq, ts: event.ts };
      var item = list.querySelector('[data-task-id="' + CSS.escape(event.task_id) + '"]');
      if (!item) {
        item = createItem(event, options);
        if (atEnd) list.appendChild(item); else list.insertBefore(item, list.firstChild);
      }
      render(item, event);
      if (empty) empty.hidden = true;
    }

    (options.initial || []).forEach(function (event) { show(event, true); });

    var socket = global.io(options.url, {
      transports: ['websocket', 'polling'],
      reconnectionDelay: 500,
      reconnectionDelayMax: 10000,
      // Called on every (re)connect: resume where we were.
      auth: function (cb) { cb(!resumes || watermark.value === null ? {} : { last_seq: watermark.value }); }
    });
    var ended = false;
    socket.on('welcome', function (w) { if (watermark.value === null) watermark.reset(w.last_seq); });
    socket.on('resync', function (r) { watermark.reset(r.last_seq); });
    socket.on('connect', function () { setStatus('Live', 'live'); });
    socket.on('disconnect', function () { if (!ended) setStatus('Reconnecting…', 'reconnecting'); });
    socket.on('connect_error', function () { if (!ended) setStatus('Reconnecting…', 'reconnecting'); });
    socket.on('session_ended', function () {
      ended = true;
      setStatus('Signed out: reload the page to sign in again.', 'ended');
    });
    socket.on(eventName, function (event) { show(event, false); });

    Array.prototype.forEach.call(document.querySelectorAll('[data-task-form]'), function (form) {
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var error = form.querySelector('[data-form-error]');
        var button = form.querySelector('button[type=submit]');
        button.disabled = true;
        postJSON(form.action, new FormData(form)).then(function () {
          error.hidden = true;
        }).catch(function (err) {
          error.textContent = err.message;
          error.hidden = false;
        }).then(function () { button.disabled = false; });
      });
    });
    return socket;
  }

  function urlFor(template) {
    if (!template) return undefined;
    return function (id) { return template.replace('__ID__', encodeURIComponent(id)); };
  }

  function mountPage(doc) {
    var list = doc.querySelector('[data-task-list]');
    if (!list) return null;
    var initial = doc.getElementById('initial-tasks');
    return mount(list, {
      initial: initial ? JSON.parse(initial.textContent) : [],
      event: list.dataset.event,
      cancelUrl: urlFor(list.dataset.cancelUrl),
      resultUrl: urlFor(list.dataset.resultUrl),
      retryUrl: urlFor(list.dataset.retryUrl)
    });
  }

  global.TaskProgress = { mount: mount, Watermark: Watermark };
  mountPage(global.document);
})(window);
