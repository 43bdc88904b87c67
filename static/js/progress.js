// Live task progress bars over Socket.IO. Include socket.io.min.js first, then call
// TaskProgress.mount(listElement). The server pushes `task_progress` events to the
// logged-in user's room; on (re)connect it sends the current state of unfinished tasks.
(function (global) {
  'use strict';

  var STATUS_TEXT = {
    queued: 'queued', running: 'running', succeeded: 'done', failed: 'failed', cancelled: 'cancelled'
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function createItem(event) {
    var item = el('li', 'task');
    item.dataset.taskId = event.task_id;
    var head = el('div', 'task-head');
    var title = el('span', 'task-name', event.name);
    title.id = 'task-' + event.task_id + '-name';
    head.appendChild(title);
    head.appendChild(el('span', 'task-status'));
    var bar = el('div', 'progress');
    bar.setAttribute('role', 'progressbar');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '100');
    bar.setAttribute('aria-labelledby', title.id);
    bar.appendChild(el('div', 'progress-fill'));
    item.appendChild(head);
    item.appendChild(bar);
    item.appendChild(el('p', 'task-message'));
    return item;
  }

  function render(item, event) {
    var pct = Math.max(0, Math.min(100, event.progress | 0));
    var bar = item.querySelector('[role=progressbar]');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.setAttribute('aria-valuetext', pct + '% ' + (STATUS_TEXT[event.status] || event.status));
    bar.querySelector('.progress-fill').style.width = pct + '%';
    item.dataset.status = event.status;
    item.querySelector('.task-status').textContent = pct + '% · ' + (STATUS_TEXT[event.status] || event.status);
    var text = event.error || event.message || '';
    if (event.total) text = 'Step ' + event.step + '/' + event.total + (text ? ' — ' + text : '');
    item.querySelector('.task-message').textContent = text;
  }

  function mount(list, options) {
    options = options || {};
    var root = list.closest('section') || document;
    var statusLine = root.querySelector('[data-connection-status]');
    var empty = root.querySelector('[data-empty]');
    var lastSeq = {};  // task_id -> highest seq shown; a snapshot may repeat what was already live

    function setStatus(text) { if (statusLine) statusLine.textContent = text; }

    function onProgress(event) {
      if (lastSeq[event.task_id] !== undefined && event.seq <= lastSeq[event.task_id]) return;
      lastSeq[event.task_id] = event.seq;
      var item = list.querySelector('[data-task-id="' + CSS.escape(event.task_id) + '"]');
      if (!item) {
        item = createItem(event);
        list.insertBefore(item, list.firstChild);
      }
      render(item, event);
      if (empty) empty.hidden = true;
    }

    var socket = global.io(options.url, { transports: ['websocket', 'polling'] });
    socket.on('connect', function () { setStatus('Live'); });
    socket.on('disconnect', function () { setStatus('Reconnecting…'); });
    socket.on('connect_error', function (err) { setStatus('Not connected: ' + err.message); });
    socket.on('task_progress', onProgress);

    Array.prototype.forEach.call(document.querySelectorAll('[data-task-form]'), function (form) {
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        var error = form.querySelector('[data-form-error]');
        var button = form.querySelector('button[type=submit]');
        button.disabled = true;
        fetch(form.action, {
          method: 'POST',
          body: new FormData(form),
          headers: { Accept: 'application/json' },
          credentials: 'same-origin'
        }).then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) throw new Error(body.error || ('HTTP ' + response.status));
            error.hidden = true;
          });
        }).catch(function (err) {
          error.textContent = err.message;
          error.hidden = false;
        }).then(function () { button.disabled = false; });
      });
    });
    return socket;
  }

  global.TaskProgress = { mount: mount };
})(window);
