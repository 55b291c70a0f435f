/// The console's stylesheet and script, embedded in the binary: no CDN, no build step.
enum ConsoleAssets {
    static let css = #"""
    :root { --fg: #1d2330; --muted: #6b7280; --line: #d8dde6; --bg: #f7f8fa; --card: #fff; --accent: #2457c5;
            --ok: #1f8a4c; --warn: #b7791f; --bad: #c53030; --idle: #6b7280; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); overflow-wrap: break-word; }
    header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .6rem 1rem; background: #1d2330; color: #fff; }
    header nav { display: flex; flex-wrap: wrap; gap: .2rem; }
    header a { color: #cfd8ea; text-decoration: none; padding: .2rem .4rem; border-radius: 4px; }
    header a.active, header a:hover { color: #fff; background: #34405a; }
    header .brand { font-weight: 700; color: #fff; }
    header .live { margin-left: auto; display: flex; gap: .5rem; align-items: center; }
    header button, header form button { background: #34405a; color: #fff; border: 0; }
    main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
    h1 { font-size: 1.3rem; margin: .2rem 0 1rem; } h2 { font-size: 1.05rem; margin: 1.2rem 0 .5rem; }
    section.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; margin-bottom: 1rem; overflow-x: auto; }
    table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-weight: 600; color: var(--muted); font-size: .85rem; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
    code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
    pre.json { background: #f1f3f7; padding: .6rem; border-radius: 4px; overflow-x: auto; max-height: 30rem; }
    button { font: inherit; padding: .25rem .7rem; border-radius: 4px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
    button.primary { background: var(--accent); color: #fff; border-color: var(--accent); } button.danger { color: var(--bad); border-color: var(--bad); }
    input, select { font: inherit; padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 4px; max-width: 100%; }
    form.inline { display: inline; } form.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
    form.filters label, form.settings label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); }
    form.settings { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; margin: .5rem 0; }
    .badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; background: #e8ebf1; }
    .badge.succeeded, .badge.ok { background: #d9f2e4; color: var(--ok); } .badge.failed, .badge.saturated { background: #fbe0e0; color: var(--bad); }
    .badge.running, .badge.queued { background: #dfe8fb; color: var(--accent); } .badge.retrying, .badge.scheduled, .badge.paused { background: #fbefd9; color: var(--warn); }
    .badge.idle, .badge.cancelled, .badge.unknown { background: #eceef2; color: var(--idle); }
    .verdict { margin: .3rem 0; } .muted { color: var(--muted); } .notice { background: #e6f0ff; border: 1px solid #b7cdf5; padding: .5rem .8rem; border-radius: 4px; margin-bottom: 1rem; }
    .error { background: #fdecec; border: 1px solid #f1b5b5; padding: .5rem .8rem; border-radius: 4px; margin-bottom: 1rem; }
    svg.bar .track { fill: #eceef2; } svg.bar .busy { fill: var(--accent); } svg.bar .stuck { fill: var(--bad); } svg.bar .free { fill: #9fd3b4; }
    svg.bar .actual { stroke: #1d2330; stroke-width: 2; }
    figure.chart { margin: 0; } figure.chart svg { width: 100%; height: 160px; background: #fbfcfe; border: 1px solid var(--line); }
    .series { fill: none; stroke-width: 1.6; vector-effect: non-scaling-stroke; }
    .series.enqueued, .legend.enqueued b { stroke: #2457c5; color: #2457c5; } .series.started, .legend.started b { stroke: #b7791f; color: #b7791f; }
    .series.succeeded, .legend.succeeded b { stroke: #1f8a4c; color: #1f8a4c; } .series.failed, .legend.failed b { stroke: #c53030; color: #c53030; }
    .axis { stroke: var(--line); } figcaption { color: var(--muted); font-size: .8rem; margin-top: .3rem; }
    #live-status.bad { color: #ffb4b4; } #live-status { font-size: .8rem; color: #cfd8ea; }
    .announce { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
    .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
    .pager { display: flex; gap: 1rem; margin-top: .6rem; }
    ul.fires { margin: 0; padding: 0; list-style: none; white-space: nowrap; } .cron, td.policies div { white-space: nowrap; }
    td.actions form { display: inline-block; margin: 0 .2rem .2rem 0; }
    @media (max-width: 640px) { main { padding: .5rem; } th, td { padding: .25rem .3rem; } .wide { display: none; } header .live { margin-left: 0; } }
    """#

    static let js = #"""
    // Live refresh: every 2 s fetch this page's live part and swap it in. Pausable (remembered per
    // browser, where storage is allowed); held while a control inside has focus (a swap would drop
    // a keyboard user's place) or a field differs from what the page was sent with (a ticked box, a
    // typed size, a chosen scope), so a swap never throws away a choice; keeps trying when the
    // server is away, so the page comes back after a restart. A screen reader hears the state when
    // it changes (live, held, unreachable), not every refresh's time.
    (function () {
      var live = document.getElementById('live');
      var toggle = document.getElementById('live-toggle');
      var status = document.getElementById('live-status');
      var announce = document.getElementById('live-announce');
      if (!live || !toggle) return;
      var said = '';
      function setStatus(text, className, state) {
        status.textContent = text;
        status.className = className;
        if (announce && state !== said) { said = state; announce.textContent = state; }
      }
      toggle.hidden = false;
      status.hidden = false;
      function remembered() { try { return window.localStorage.getItem('sluice-live'); } catch (e) { return null; } }
      function remember(value) { try { window.localStorage.setItem('sluice-live', value); } catch (e) { } }
      var paused = remembered() === 'off';
      function show() { toggle.textContent = paused ? 'Resume live' : 'Pause live'; toggle.setAttribute('aria-pressed', String(paused)); if (paused) setStatus('paused', '', 'live refresh paused'); }
      show();
      toggle.addEventListener('click', function () { paused = !paused; remember(paused ? 'off' : 'on'); show(); });
      function edited(field) {
        if (field.tagName === 'SELECT' && field.multiple) {
          for (var j = 0; j < field.options.length; j++) if (field.options[j].selected !== field.options[j].defaultSelected) return true;
          return false;
        }
        if (field.tagName === 'SELECT') {
          // A single select with no option marked selected starts on its first.
          var first = 0;
          for (var k = 0; k < field.options.length; k++) if (field.options[k].defaultSelected) { first = k; break; }
          return field.options.length > 0 && field.selectedIndex !== first;
        }
        if (field.type === 'checkbox' || field.type === 'radio') return field.checked !== field.defaultChecked;
        return field.type !== 'hidden' && field.value !== field.defaultValue;
      }
      // Why the refresh holds, or '' when it need not.
      function held() {
        var active = document.activeElement;
        if (active && active !== live && live.contains(active)) {
          return /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName) ? 'held while you fill in a form' : 'held while a control has focus';
        }
        var fields = live.querySelectorAll('input, select, textarea');
        for (var i = 0; i < fields.length; i++) if (edited(fields[i])) return 'held while you fill in a form';
        return '';
      }
      function refresh() {
        if (paused) return;
        var why = held();
        if (why) { setStatus(why, '', why); return; }
        fetch(window.location.href, { headers: { 'X-Sluice-Fragment': '1' }, credentials: 'same-origin', cache: 'no-store' })
          .then(function (response) {
            if (response.status === 401) { setStatus('signed out: reload to sign in', 'bad', 'signed out'); return null; }
            if (!response.ok) { setStatus('the server answered ' + response.status + ': reload the page', 'bad', 'server error'); return null; }
            return response.text();
          })
          .then(function (html) {
            if (html === null) return;
            live.innerHTML = html;
            setStatus('live, ' + new Date().toLocaleTimeString(), 'ok', 'live');
          })
          .catch(function () { setStatus('server unreachable, retrying', 'bad', 'server unreachable, retrying'); });
      }
      window.setInterval(refresh, 2000);
    })();
    """#
}
