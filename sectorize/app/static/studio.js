/* Plan studio: edit a draft of the sectorization plan on the map (editors and publishers).
 *
 * Calls /api/me, /api/login, /api/logout, /api/plans, /api/plans/{id}, /api/plans/{id}/drafts,
 * /api/drafts/{id}[/moves|/undo|/redo|/locks|/reoptimise|/save], /api/jobs/{id}[/cancel],
 * /api/plans/{id}/publish, /api/demand, /api/demand/{upload}/rerun and /api/geometry.
 *
 * Hooks for tests (window.studio):
 *   selectUnits(insees)  replaces the selection (array of INSEE codes); returns the selection
 *   selection()          the selected INSEE codes
 *   state()              the current DraftState (null when no draft is open)
 *   idle()               Promise resolved when no request is in flight and no job is running
 *   ready                Promise resolved once the first screen (login form or map) is shown
 */
'use strict';

(function () {
  const { api, ApiError, h, clear, frDate, fmt, signedPct, todayIso } = window.SZ;
  const $ = (id) => document.getElementById(id);

  const STATUS_FR = {
    draft: 'brouillon', saved: 'enregistré', published: 'publié', in_force: 'en vigueur', scheduled: 'programmé',
    superseded: 'remplacé', retired: 'retiré', invalid: 'non valide', unpublished: 'non publié', past: 'passé',
    future: 'à venir', withdrawn: 'retiré', 'edited by hand': 'modifié à la main', feasible: 'réalisable',
    optimal: 'optimal', imported: 'importé',
  };
  const JOB_STATE_FR = { queued: 'en attente', running: 'en cours', done: 'terminé', failed: 'échec', cancelled: 'annulé' };
  const PROBLEM_FR = { contiguity: 'Contiguïté', balance: 'Équilibre', empty: 'Secteur vide', territory: 'Territoire' };
  const ROLE_FR = { editor: 'éditeur', publisher: 'publication' };
  const GROUP_HUES = [212, 28, 130, 330, 270, 55];
  const BAR_SCALE = 1.5; // the bar track spans 0..150 % of the target

  const S = {
    me: { user: null, role: null },
    plans: [],
    inForce: null,
    plan: null, // GET /api/plans/{id} of the plan shown or the draft's parent
    sectorInfo: new Map(), // sector -> {sector, group, worker_name, color, target}
    colours: new Map(),
    groupFill: new Map(), // sector -> colour when colouring by group
    assignment: {},
    draft: null,
    locked: new Set(),
    lockedSectors: new Set(),
    selection: new Set(),
    job: null,
    byGroup: false,
    showDiff: false,
    highlighted: null, // array of sectors highlighted from the problems list
    lastSaved: null,
    pending: 0,
    busy: false,
    suppressClickUntil: 0,
    rectMode: false,
  };

  let map = null;
  let units = null; // {group, layers: Map insee -> layer}
  let info = null;
  let lasso = null;
  let diffLayer = null;
  let sectorLayer = null;
  let geometryPromise = null;
  const styleKeys = new Map();
  const idleWaiters = [];

  // ------------------------------------------------------------------ plumbing
  function settleIdle() {
    if (S.pending === 0 && !S.job) {
      while (idleWaiters.length) {
        idleWaiters.shift()();
      }
    }
  }

  /** Runs an API call, counting it as pending; errors become a page message (returns null). */
  async function call(fn, { quiet = false, clearMessage = false } = {}) {
    S.pending++;
    if (clearMessage) {
      showMessage('');
    }
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && S.me.user) {
        S.me = { user: null, role: null };
        showLogin('Session expirée : reconnectez-vous.');
      } else if (!quiet) {
        showMessage(err.message || String(err));
      }
      return null;
    } finally {
      S.pending--;
      setTimeout(settleIdle, 0);
    }
  }

  function showMessage(text, kind = 'error') {
    const box = $('global-message');
    if (!text) {
      box.hidden = true;
      $('global-message-text').textContent = '';
      return;
    }
    $('global-message-text').textContent = text;
    box.className = `global-message ${kind}`;
    box.dataset.kind = kind;
    box.hidden = false;
  }
  $('global-message-close').addEventListener('click', () => showMessage(''));

  // ------------------------------------------------------------------ login
  function showLogin(message) {
    $('editor-view').hidden = true;
    $('user-box').hidden = true;
    $('login-view').hidden = false;
    const err = $('login-error');
    err.hidden = !message;
    err.textContent = message || '';
    stopJobPolling();
    $('login-user').focus();
  }

  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const err = $('login-error');
    err.hidden = true;
    const user = $('login-user').value.trim();
    const password = $('login-password').value;
    if (!user || !password) {
      err.textContent = 'Saisissez l’identifiant et le mot de passe.';
      err.hidden = false;
      return;
    }
    $('login-submit').disabled = true;
    S.pending++;
    try {
      const me = await api('POST', '/api/login', { user, password });
      $('login-password').value = '';
      S.me = { user: me.user, role: me.role };
      await showEditor();
    } catch (ex) {
      let text = ex.message;
      if (ex instanceof ApiError && ex.status === 429) {
        const retry = ex.headers && ex.headers.get('Retry-After');
        text = `Trop de tentatives${retry ? `, connexion bloquée ${retry} s` : ''} : ${ex.message}`;
      } else if (ex instanceof ApiError && ex.status === 401) {
        text = `Connexion refusée : ${ex.message || 'identifiant ou mot de passe incorrect'}`;
      }
      err.textContent = text;
      err.hidden = false;
    } finally {
      $('login-submit').disabled = false;
      S.pending--;
      setTimeout(settleIdle, 0);
    }
  });

  $('logout-button').addEventListener('click', async () => {
    await call(() => api('POST', '/api/logout'));
    S.me = { user: null, role: null };
    S.draft = null;
    S.selection.clear();
    showLogin('');
  });

  // ------------------------------------------------------------------ editor screen
  async function showEditor() {
    $('login-view').hidden = true;
    $('editor-view').hidden = false;
    $('user-box').hidden = false;
    $('user-name').textContent = S.me.user;
    $('user-role').textContent = ROLE_FR[S.me.role] || S.me.role || '';
    $('user-role').dataset.role = S.me.role || '';
    $('publish-section').hidden = S.me.role !== 'publisher';
    $('publish-date').value = $('publish-date').value || todayIso();
    showMessage('');
    if (!map) {
      initMap();
    } else {
      map.invalidateSize();
    }
    const geometry = loadGeometry();
    await loadPlans();
    const chosen = S.plans.some((p) => p.id === S.inForce) ? S.inForce : (S.plans[0] && S.plans[0].id);
    if (chosen) {
      $('plan-select').value = chosen;
      await showPlan(chosen);
    } else {
      $('plan-details').textContent = 'Aucun plan dans le registre.';
    }
    await geometry;
    restyleAll();
    updateControls();
  }

  async function loadPlans() {
    const data = await call(() => api('GET', '/api/plans'));
    if (!data) {
      return;
    }
    S.plans = data.plans || [];
    S.inForce = data.in_force || null;
    const select = $('plan-select');
    const previous = select.value;
    clear(select);
    for (const p of S.plans) {
      select.appendChild(h('option', { value: p.id, text: planLabel(p) }));
    }
    if (previous && S.plans.some((p) => p.id === previous)) {
      select.value = previous;
    }
    fillPublishPlans();
  }

  function planLabel(p) {
    const parts = [p.id];
    if (p.id === S.inForce) {
      parts.push('en vigueur');
    } else if (p.status) {
      parts.push(STATUS_FR[p.status] || p.status);
    }
    parts.push(p.valid ? 'valide' : 'non valide');
    if (p.effective_from) {
      parts.push(`du ${frDate(p.effective_from)}${p.effective_to ? ` au ${frDate(p.effective_to)}` : ''}`);
    }
    return parts.join(' — ');
  }

  function fillPublishPlans() {
    const select = $('publish-plan');
    const previous = select.value;
    clear(select);
    const publishable = S.plans.filter((p) => p.valid);
    for (const p of publishable) {
      select.appendChild(h('option', { value: p.id, text: planLabel(p) }));
    }
    const wanted = S.lastSaved && publishable.some((p) => p.id === S.lastSaved) ? S.lastSaved : previous;
    if (wanted && publishable.some((p) => p.id === wanted)) {
      select.value = wanted;
    }
  }

  $('plan-select').addEventListener('change', async () => {
    const id = $('plan-select').value;
    if (!id) {
      return;
    }
    S.draft = null;
    await showPlan(id);
  });

  /** Shows a stored plan (read-only) on the map. */
  async function showPlan(id) {
    const plan = await call(() => api('GET', `/api/plans/${encodeURIComponent(id)}`));
    if (!plan) {
      return;
    }
    setPlan(plan);
    S.draft = null;
    S.locked = new Set();
    S.lockedSectors = new Set();
    S.assignment = plan.assignment || {};
    const summary = S.plans.find((p) => p.id === id) || plan;
    $('plan-details').textContent = [
      summary.name ? `« ${summary.name} »` : '',
      summary.created ? `créé le ${frDate(summary.created)}` : '',
      summary.parent_id ? `issu de ${summary.parent_id}` : '',
      summary.effective_from ? `en vigueur du ${frDate(summary.effective_from)}${summary.effective_to ? ` au ${frDate(summary.effective_to)}` : ''}` : 'jamais publié',
      summary.note ? `note : ${summary.note}` : '',
    ].filter(Boolean).join(' · ');
    $('draft-info').textContent = 'Aucun brouillon ouvert : « Modifier » crée un brouillon à partir de ce plan.';
    renderReview(null);
    restyleAll();
    updateControls();
  }

  function setPlan(plan) {
    S.plan = plan;
    S.sectorInfo = new Map((plan.sectors || []).map((s) => [s.sector, s]));
    S.colours = window.SZ.sectorColours(plan.sectors);
    S.groupFill = new Map();
    const groups = [];
    const seen = new Map();
    for (const s of plan.sectors || []) {
      if (!seen.has(s.group)) {
        seen.set(s.group, 0);
        groups.push(s.group);
      }
      const hue = GROUP_HUES[groups.indexOf(s.group) % GROUP_HUES.length];
      const i = seen.get(s.group);
      seen.set(s.group, i + 1);
      S.groupFill.set(s.sector, `hsl(${hue}, 60%, ${34 + ((i * 11) % 40)}%)`);
    }
    const select = $('move-sector');
    const previous = select.value;
    clear(select);
    for (const s of plan.sectors || []) {
      select.appendChild(h('option', { value: s.sector, text: `${s.sector} — ${s.worker_name || s.worker_id || ''} (groupe ${s.group ?? '—'})` }));
    }
    if (previous && S.sectorInfo.has(previous)) {
      select.value = previous;
    }
  }

  $('new-draft-button').addEventListener('click', async () => {
    const id = $('plan-select').value;
    if (!id || S.busy) {
      return;
    }
    S.busy = true;
    updateControls();
    try {
      const created = await call(() => api('POST', `/api/plans/${encodeURIComponent(id)}/drafts`), { clearMessage: true });
      if (created && created.id) {
        await openDraft(created.id);
      }
    } finally {
      S.busy = false;
      updateControls();
    }
  });

  /** Loads a draft (GET /api/drafts/{id}) and its parent plan's sectors, then draws it. */
  async function openDraft(draftId) {
    const state = await call(() => api('GET', `/api/drafts/${encodeURIComponent(draftId)}`));
    if (!state) {
      return null;
    }
    if (state.parent_id && (!S.plan || S.plan.id !== state.parent_id)) {
      const plan = await call(() => api('GET', `/api/plans/${encodeURIComponent(state.parent_id)}`));
      if (plan) {
        setPlan(plan);
      }
      if (S.plans.some((p) => p.id === state.parent_id)) {
        $('plan-select').value = state.parent_id;
      }
    }
    S.draft = null; // full redraw below
    applyDraft(state, { full: true });
    return state;
  }

  /** Shows a DraftState: restyles only the units whose look changed, then the side panel. */
  function applyDraft(state, { full = false } = {}) {
    S.draft = state;
    S.assignment = state.assignment || {};
    S.locked = new Set((state.locked_units || []).map(String));
    S.lockedSectors = new Set(state.locked_sectors || []);
    for (const s of (state.review && state.review.sectors) || []) {
      if (!S.sectorInfo.has(s.sector)) {
        S.sectorInfo.set(s.sector, s);
      }
    }
    if (full) {
      restyleAll();
    } else {
      refreshStyles();
    }
    const review = state.review || null;
    $('draft-info').textContent = `Brouillon ${state.id}, à partir du plan ${state.parent_id || '—'}`
      + (state.in_force_id ? ` ; comparé au plan en vigueur ${state.in_force_id}` : '');
    $('draft-info').dataset.draft = state.id;
    renderReview(review);
    renderSelectionInfo();
    redrawDiff();
    redrawSectorHighlight();
    updateControls();
  }

  // ------------------------------------------------------------------ map
  function initMap() {
    map = window.SZ.createMap($('map'), { boxZoom: false, doubleClickZoom: false });
    info = window.SZ.infoControl(map);
    map.on('click', (e) => {
      if (Date.now() < S.suppressClickUntil) {
        return;
      }
      if (!(e.originalEvent && e.originalEvent.shiftKey)) {
        setSelection([]);
      }
    });
    if (L.lasso) {
      lasso = L.lasso(map, { intersect: false, polygon: { color: '#0b5cad', weight: 2 } });
      map.on('lasso.finished', (e) => {
        S.suppressClickUntil = Date.now() + 300;
        const picked = [];
        for (const layer of e.layers || []) {
          const insee = layer.feature && layer.feature.properties ? String(layer.feature.properties.insee) : null;
          if (insee && units && units.layers.get(insee) === layer) {
            picked.push(insee);
          }
        }
        addToSelection(picked);
      });
      map.on('lasso.enabled', () => setPressed('lasso-button', true));
      map.on('lasso.disabled', () => setPressed('lasso-button', false));
    } else {
      $('lasso-button').disabled = true;
    }
    const wrap = $('map').parentElement;
    wrap.addEventListener('mousedown', onRectDown, true);
  }

  function loadGeometry() {
    if (!geometryPromise) {
      $('map-status').textContent = 'Chargement de la carte…';
      geometryPromise = call(() => api('GET', '/api/geometry')).then((geojson) => {
        if (!geojson) {
          $('map-status').textContent = 'Carte indisponible.';
          geometryPromise = null;
          return;
        }
        units = window.SZ.loadUnits(map, geojson, unitStyle, {
          click: onUnitClick,
          hover: (insee, layer) => {
            if (!insee) {
              info.set('');
              return;
            }
            const sector = S.assignment[insee];
            const locked = S.locked.has(insee) || (sector && S.lockedSectors.has(sector));
            info.set(`${window.SZ.featureLabel(layer)}${sector ? ` — secteur ${sector}` : ''}${locked ? ' — verrouillée' : ''}`);
          },
        });
        styleKeys.clear();
        $('map-status').textContent = `${units.layers.size} communes.`;
      });
    }
    return geometryPromise;
  }

  function fillFor(insee) {
    const sector = S.assignment[insee];
    if (!sector) {
      return window.SZ.NO_SECTOR_COLOUR;
    }
    return (S.byGroup ? S.groupFill.get(sector) : S.colours.get(sector)) || window.SZ.NO_SECTOR_COLOUR;
  }

  function isLocked(insee) {
    const sector = S.assignment[insee];
    return S.locked.has(insee) || Boolean(sector && S.lockedSectors.has(sector));
  }

  function unitStyle(insee) {
    const style = {
      fillColor: fillFor(insee), fillOpacity: 0.72, color: '#8c8c8c', weight: 0.4, opacity: 0.9, dashArray: null,
    };
    if (isLocked(insee)) {
      Object.assign(style, { color: '#1a1a1a', weight: 1.1, opacity: 0.75, dashArray: '3 3' });
    }
    if (S.selection.has(insee)) {
      Object.assign(style, { color: '#111111', weight: 2.8, opacity: 1, dashArray: null, fillOpacity: 0.88 });
    }
    return style;
  }

  function styleKey(insee) {
    return `${fillFor(insee)}|${isLocked(insee) ? 1 : 0}|${S.selection.has(insee) ? 1 : 0}`;
  }

  /** Restyles the units whose look changed (all of them are checked, few are redrawn). */
  function refreshStyles() {
    if (!units) {
      return 0;
    }
    let changed = 0;
    const front = [];
    for (const [insee, layer] of units.layers) {
      const key = styleKey(insee);
      if (styleKeys.get(insee) !== key) {
        styleKeys.set(insee, key);
        layer.setStyle(unitStyle(insee));
        changed++;
        if (S.selection.has(insee)) {
          front.push(layer);
        }
      }
    }
    for (const layer of front) {
      layer.bringToFront();
    }
    return changed;
  }

  function restyleAll() {
    styleKeys.clear();
    refreshStyles();
  }

  // ------------------------------------------------------------------ selection
  function onUnitClick(e, insee) {
    if (Date.now() < S.suppressClickUntil) {
      return;
    }
    if (e.originalEvent && e.originalEvent.shiftKey) {
      const next = new Set(S.selection);
      if (next.has(insee)) {
        next.delete(insee);
      } else {
        next.add(insee);
      }
      setSelection([...next]);
    } else {
      setSelection([insee]);
    }
  }

  function setSelection(insees) {
    S.selection = new Set(insees.map(String).filter((c) => !units || units.layers.has(c)));
    refreshStyles();
    renderSelectionInfo();
    updateControls();
    return [...S.selection];
  }

  function addToSelection(insees) {
    return setSelection([...S.selection, ...insees]);
  }

  function renderSelectionInfo() {
    const n = S.selection.size;
    const box = $('selection-info');
    box.dataset.count = String(n);
    if (!n) {
      box.textContent = 'Aucune commune sélectionnée.';
      return;
    }
    const bySector = new Map();
    const names = [];
    for (const insee of S.selection) {
      const sector = S.assignment[insee] || '—';
      bySector.set(sector, (bySector.get(sector) || 0) + 1);
      if (names.length < 4 && units) {
        const layer = units.layers.get(insee);
        names.push(layer ? layer.feature.properties.name : insee);
      }
    }
    const sectors = [...bySector].map(([s, k]) => `${s} (${k})`).join(', ');
    box.textContent = `${n} commune${n > 1 ? 's' : ''} sélectionnée${n > 1 ? 's' : ''} : ${names.join(', ')}${n > names.length ? '…' : ''} — secteurs ${sectors}`;
  }

  function setPressed(id, on) {
    $(id).setAttribute('aria-pressed', on ? 'true' : 'false');
    $(id).classList.toggle('pressed', on);
  }

  $('lasso-button').addEventListener('click', () => {
    if (!lasso) {
      return;
    }
    if (S.rectMode) {
      S.rectMode = false;
      setPressed('rect-button', false);
    }
    lasso.toggle();
  });
  $('lasso-intersect').addEventListener('change', () => {
    if (lasso) {
      lasso.setOptions({ intersect: $('lasso-intersect').checked });
    }
  });
  $('rect-button').addEventListener('click', () => {
    if (lasso && lasso.enabled()) {
      lasso.disable();
    }
    S.rectMode = !S.rectMode;
    setPressed('rect-button', S.rectMode);
    $('map').classList.toggle('rect-mode', S.rectMode);
  });
  $('clear-selection').addEventListener('click', () => setSelection([]));
  $('code-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const codes = $('code-input').value.split(/[\s,;]+/).map((c) => c.trim().toUpperCase()).filter(Boolean);
    if (!codes.length) {
      return;
    }
    const unknown = units ? codes.filter((c) => !units.layers.has(c)) : [];
    addToSelection(codes);
    if (unknown.length) {
      showMessage(`Codes INSEE inconnus : ${unknown.join(', ')}`);
    }
  });

  // Rectangle selection: Shift+drag, or plain drag when the "Rectangle" tool is on.
  let rect = null;
  function onRectDown(e) {
    if (e.button !== 0 || !(e.shiftKey || S.rectMode) || !map || !units) {
      return;
    }
    if (lasso && lasso.enabled()) {
      return;
    }
    if (!$('map').contains(e.target) || e.target.closest('.leaflet-control-container')) {
      return;
    }
    e.stopPropagation(); // Leaflet does not start a pan
    e.preventDefault();
    rect = { start: map.mouseEventToContainerPoint(e), layer: null };
    document.addEventListener('mousemove', onRectMove);
    document.addEventListener('mouseup', onRectUp);
  }

  function onRectMove(e) {
    if (!rect) {
      return;
    }
    const p = map.mouseEventToContainerPoint(e);
    if (!rect.layer && p.distanceTo(rect.start) < 4) {
      return;
    }
    const bounds = L.latLngBounds(map.containerPointToLatLng(rect.start), map.containerPointToLatLng(p));
    if (!rect.layer) {
      rect.layer = L.rectangle(bounds, {
        renderer: map._szRenderer, interactive: false, color: '#0b5cad', weight: 1.5, dashArray: '5 4', fillOpacity: 0.08,
      }).addTo(map);
    } else {
      rect.layer.setBounds(bounds);
    }
  }

  function onRectUp() {
    document.removeEventListener('mousemove', onRectMove);
    document.removeEventListener('mouseup', onRectUp);
    const done = rect;
    rect = null;
    if (!done || !done.layer) {
      return; // no drag: the click goes on to the unit (Shift+click)
    }
    const box = done.layer.getBounds();
    done.layer.remove();
    S.suppressClickUntil = Date.now() + 300;
    const picked = [];
    for (const [insee, layer] of units.layers) {
      const b = layer.getBounds();
      if (box.intersects(b) && box.contains(b.getCenter())) {
        picked.push(insee);
      }
    }
    addToSelection(picked);
  }

  // ------------------------------------------------------------------ draft actions
  async function mutate(path, body) {
    if (!S.draft || S.busy || S.job) {
      return null;
    }
    S.busy = true;
    updateControls();
    try {
      const state = await call(() => api('POST', `/api/drafts/${encodeURIComponent(S.draft.id)}/${path}`, body),
        { clearMessage: true });
      if (state && state.assignment) {
        applyDraft(state);
      }
      return state;
    } finally {
      S.busy = false;
      updateControls();
    }
  }

  $('move-button').addEventListener('click', () => {
    const sector = $('move-sector').value;
    if (!S.selection.size || !sector) {
      return;
    }
    mutate('moves', { units: [...S.selection], sector });
  });
  $('undo-button').addEventListener('click', () => mutate('undo'));
  $('redo-button').addEventListener('click', () => mutate('redo'));
  $('lock-selection').addEventListener('click', () => {
    if (S.selection.size) {
      mutate('locks', { units: [...S.selection], locked: true });
    }
  });
  $('unlock-selection').addEventListener('click', () => {
    if (S.selection.size) {
      mutate('locks', { units: [...S.selection], locked: false });
    }
  });

  document.addEventListener('keydown', (e) => {
    const target = e.target;
    const typing = target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
    if (e.key === 'Escape') {
      if (lasso && lasso.enabled()) {
        lasso.disable();
      }
      if (S.rectMode) {
        S.rectMode = false;
        setPressed('rect-button', false);
      }
      return;
    }
    if (typing || !(e.ctrlKey || e.metaKey) || e.altKey || $('editor-view').hidden) {
      return;
    }
    const key = e.key.toLowerCase();
    if (key === 'z' && !e.shiftKey) {
      e.preventDefault();
      mutate('undo');
    } else if (key === 'y' || (key === 'z' && e.shiftKey)) {
      e.preventDefault();
      mutate('redo');
    }
  });

  function updateControls() {
    const editing = Boolean(S.draft) && !S.busy && !S.job;
    const hasSel = S.selection.size > 0;
    $('move-button').disabled = !(editing && hasSel);
    $('move-sector').disabled = !S.draft;
    $('lock-selection').disabled = !(editing && hasSel);
    $('unlock-selection').disabled = !(editing && hasSel);
    $('undo-button').disabled = !(editing && S.draft.can_undo);
    $('redo-button').disabled = !(editing && S.draft.can_redo);
    $('reoptimise-button').disabled = !editing;
    $('save-button').disabled = !editing;
    $('new-draft-button').disabled = S.busy || Boolean(S.job) || !$('plan-select').value;
    $('plan-select').disabled = S.busy || Boolean(S.job);
    $('publish-button').disabled = Boolean(S.job) || !$('publish-plan').value;
    $('demand-rerun').disabled = Boolean(S.job) || !S.demandUpload;
    for (const box of document.querySelectorAll('#bars input[type="checkbox"]')) {
      box.disabled = !editing;
    }
  }

  // ------------------------------------------------------------------ review panel
  function renderReview(review) {
    const bars = $('bars');
    const problems = $('problems');
    clear(bars);
    clear(problems);
    if (!review) {
      $('review-valid').textContent = 'Ouvrez un brouillon pour voir le bilan (charge, contiguïté, trajets).';
      $('review-valid').dataset.valid = '';
      $('travel').textContent = '';
      $('changes').textContent = '';
      return;
    }
    $('review-valid').textContent = review.valid ? 'Brouillon valide.' : 'Brouillon non valide : voir les problèmes.';
    $('review-valid').dataset.valid = review.valid ? 'true' : 'false';
    $('review-valid').className = `small ${review.valid ? 'ok' : 'bad'}`;

    const balance = new Set();
    const contiguity = new Set();
    for (const p of review.problems || []) {
      for (const s of p.sectors || []) {
        if (p.kind === 'balance') {
          balance.add(s);
        } else if (p.kind === 'contiguity') {
          contiguity.add(s);
        }
      }
    }

    const sorted = [...(review.sectors || [])].sort((a, b) => String(a.sector).localeCompare(String(b.sector), 'fr', { numeric: true }));
    for (const s of sorted) {
      const ratio = s.target ? s.caseload / s.target : 0;
      const width = Math.max(0, Math.min(ratio / BAR_SCALE, 1)) * 100;
      const bad = balance.has(s.sector);
      const fill = h('div', { class: `bar-fill${bad ? ' bad' : ''}` });
      fill.style.width = `${width.toFixed(1)}%`;
      const colour = S.colours.get(s.sector);
      if (colour && !bad) {
        fill.style.backgroundColor = colour;
      }
      const target = h('div', { class: 'bar-target', title: 'Cible (100 %)' });
      target.style.left = `${(100 / BAR_SCALE).toFixed(2)}%`;
      const lockBox = h('input', {
        type: 'checkbox',
        testid: `lock-sector-${s.sector}`,
        'aria-label': `Verrouiller le secteur ${s.sector}`,
        checked: Boolean(s.locked || S.lockedSectors.has(s.sector)),
        on: { change: (e) => mutate('locks', { sectors: [s.sector], locked: e.target.checked }) },
      });
      const notes = [];
      notes.push(`${fmt(s.communes, 0)} communes`);
      if (s.travel_mean_min !== undefined && s.travel_mean_min !== null) {
        notes.push(`trajet moyen ${fmt(s.travel_mean_min, 0)} min, max ${fmt(s.travel_max_min, 0)} min`);
      }
      const row = h('li', {
        class: `bar-row${bad ? ' bad' : ''}${contiguity.has(s.sector) ? ' broken' : ''}${isHighlighted(s.sector) ? ' highlight' : ''}`,
        testid: `bar-${s.sector}`,
        dataset: {
          sector: s.sector, caseload: s.caseload, target: s.target, deviation: s.deviation_pct,
          balance: bad ? 'bad' : 'ok', contiguous: s.contiguous === false ? 'false' : 'true',
        },
      },
      h('div', { class: 'bar-head' },
        lockBox,
        h('button', {
          type: 'button', class: 'link sector-name', testid: `sector-${s.sector}`,
          title: `${s.sector} — ${s.worker_name || s.worker_id || ''} (groupe ${s.group ?? '—'})`,
          'aria-label': `Montrer le secteur ${s.sector} sur la carte`,
          on: { click: () => toggleSectorHighlight([s.sector]) },
        }, h('strong', { text: s.sector }), ` ${s.worker_name || s.worker_id || ''}`),
        h('span', { class: 'bar-value' },
          `${fmt(s.caseload, 1)} / ${fmt(s.target, 1)} `,
          h('span', { class: `dev${bad ? ' bad' : ''}`, text: `(${signedPct(s.deviation_pct)})` }))),
      h('div', {
        class: 'bar-track', role: 'img',
        'aria-label': `Secteur ${s.sector} : charge ${fmt(s.caseload, 1)} pour une cible de ${fmt(s.target, 1)}, écart ${signedPct(s.deviation_pct)}${bad ? ', hors de la marge' : ''}`,
      }, fill, target),
      h('p', { class: 'bar-notes' }, notes.join(' · '),
        s.contiguous === false ? h('span', { class: 'badge orange', text: ` non contigu (${s.pieces} morceaux)` }) : null,
        s.locked || S.lockedSectors.has(s.sector) ? h('span', { class: 'badge', text: ' verrouillé' }) : null));
      bars.appendChild(row);
    }

    const list = review.problems || [];
    if (!list.length) {
      problems.appendChild(h('li', { class: 'none', text: 'Aucun problème.' }));
    }
    for (const p of list) {
      const kind = p.kind || 'other';
      const sectors = p.sectors || [];
      problems.appendChild(h('li', { class: `problem kind-${kind}`, testid: 'problem', dataset: { kind, sectors: sectors.join(' ') } },
        h('button', {
          type: 'button', class: 'problem-button',
          'aria-label': `${PROBLEM_FR[kind] || kind} : ${p.message || ''}. Montrer ${sectors.join(', ')} sur la carte`,
          on: { click: () => toggleSectorHighlight(sectors) },
        },
        h('span', { class: 'problem-kind', text: PROBLEM_FR[kind] || kind }),
        sectors.length ? h('span', { class: 'problem-sectors', text: ` [${sectors.join(', ')}] ` }) : ' ',
        h('span', { class: 'problem-message', text: p.message || '' }))));
    }

    const t = review.travel || {};
    $('travel').textContent = `Temps de trajet depuis la base (pondéré par la charge) : moyen ${fmt(t.mean_min, 1)} min, `
      + `90e centile ${fmt(t.p90_min, 1)} min, maximum ${fmt(t.max_min, 1)} min.`;
    const c = review.changes || {};
    const unit = c.unit === 'patients' || !c.unit ? 'patients' : 'unités de charge';
    $('changes').textContent = `Changements par rapport au plan en vigueur${c.against ? ` (${c.against})` : ''} : `
      + `${fmt(c.communes || 0, 0)} commune${(c.communes || 0) > 1 ? 's' : ''}, ${fmt(c.patients || 0, 1)} ${unit}.`;
    $('changes').dataset.communes = String(c.communes || 0);
    $('changes').dataset.patients = String(c.patients || 0);
  }

  function isHighlighted(sector) {
    return Boolean(S.highlighted && S.highlighted.includes(sector));
  }

  function toggleSectorHighlight(sectors) {
    const same = S.highlighted && S.highlighted.join(' ') === sectors.join(' ');
    S.highlighted = same || !sectors.length ? null : sectors;
    for (const row of document.querySelectorAll('#bars .bar-row')) {
      row.classList.toggle('highlight', isHighlighted(row.dataset.sector));
    }
    redrawSectorHighlight(true);
  }

  function overlayOf(insees, style) {
    const features = [];
    for (const insee of insees) {
      const layer = units && units.layers.get(String(insee));
      if (layer) {
        features.push(layer.feature);
      }
    }
    if (!features.length) {
      return null;
    }
    return L.geoJSON({ type: 'FeatureCollection', features }, {
      renderer: map._szRenderer, interactive: false, style: () => style,
    }).addTo(map);
  }

  function redrawSectorHighlight(fit = false) {
    if (sectorLayer) {
      sectorLayer.remove();
      sectorLayer = null;
    }
    if (!S.highlighted || !units) {
      return;
    }
    const wanted = new Set(S.highlighted);
    const insees = Object.keys(S.assignment).filter((i) => wanted.has(S.assignment[i]));
    sectorLayer = overlayOf(insees, { color: '#e65100', weight: 2.2, opacity: 1, fill: true, fillColor: '#ff9800', fillOpacity: 0.25 });
    if (fit && sectorLayer) {
      map.fitBounds(sectorLayer.getBounds(), { padding: [30, 30], maxZoom: 10 });
    }
  }

  function redrawDiff() {
    if (diffLayer) {
      diffLayer.remove();
      diffLayer = null;
    }
    const changes = S.draft && S.draft.review && S.draft.review.changes;
    if (!S.showDiff || !changes || !units) {
      return;
    }
    diffLayer = overlayOf(changes.units || [], {
      color: '#c2185b', weight: 2.4, opacity: 1, fill: true, fillColor: '#ffffff', fillOpacity: 0.35, dashArray: '2 3',
    });
  }

  $('diff-toggle').addEventListener('change', (e) => {
    S.showDiff = e.target.checked;
    redrawDiff();
  });
  $('group-toggle').addEventListener('change', (e) => {
    S.byGroup = e.target.checked;
    refreshStyles();
  });

  // ------------------------------------------------------------------ jobs
  function startJob(jobId, label, onDone) {
    stopJobPolling();
    S.job = { id: jobId, label, onDone, timer: null };
    $('job-panel').hidden = false;
    $('job-cancel').disabled = false;
    $('job-status').textContent = `${label} : démarrage…`;
    $('job-status').dataset.state = 'queued';
    $('job-line').textContent = '';
    updateControls();
    pollJob();
  }

  function stopJobPolling() {
    if (S.job && S.job.timer) {
      clearTimeout(S.job.timer);
    }
    S.job = null;
  }

  function renderJob(job, label) {
    const parts = [`${label} : ${JOB_STATE_FR[job.state] || job.state}`];
    if (job.elapsed_s !== undefined && job.elapsed_s !== null) {
      parts.push(`${fmt(job.elapsed_s, 1)} s`);
    }
    if (job.incumbent !== undefined && job.incumbent !== null) {
      parts.push(`meilleure solution ${fmt(job.incumbent, 3)}`);
    }
    if (job.bound !== undefined && job.bound !== null) {
      parts.push(`borne ${fmt(job.bound, 3)}`);
    }
    if (job.state === 'failed' && job.error) {
      parts.push(`erreur : ${job.error}`);
    }
    $('job-status').textContent = parts.join(' — ');
    $('job-status').dataset.state = job.state;
    const lines = job.lines || [];
    $('job-line').textContent = lines.length ? lines[lines.length - 1] : '';
  }

  async function pollJob() {
    const job = S.job;
    if (!job) {
      return;
    }
    const data = await call(() => api('GET', `/api/jobs/${encodeURIComponent(job.id)}`));
    if (S.job !== job) {
      return;
    }
    if (!data) {
      S.job = null;
      $('job-cancel').disabled = true;
      updateControls();
      settleIdle();
      return;
    }
    renderJob(data, job.label);
    if (['done', 'failed', 'cancelled'].includes(data.state)) {
      $('job-cancel').disabled = true;
      S.job = null;
      updateControls();
      S.pending++; // keep idle() waiting for the follow-up requests
      try {
        if (data.state === 'failed') {
          showMessage(`Le calcul a échoué : ${data.error || 'erreur inconnue'}`);
        }
        await job.onDone(data);
      } finally {
        S.pending--;
        updateControls();
        setTimeout(settleIdle, 0);
      }
      return;
    }
    job.timer = setTimeout(pollJob, 500);
  }

  $('job-cancel').addEventListener('click', async () => {
    const job = S.job;
    if (!job) {
      return;
    }
    $('job-cancel').disabled = true;
    const data = await call(() => api('POST', `/api/jobs/${encodeURIComponent(job.id)}/cancel`));
    if (data && S.job === job) {
      renderJob(data, job.label);
    }
  });

  $('reoptimise-button').addEventListener('click', async () => {
    if (!S.draft || S.job || S.busy) {
      return;
    }
    const seconds = Number($('reoptimise-time').value) || 20;
    const draftId = S.draft.id;
    const started = await call(() => api('POST', `/api/drafts/${encodeURIComponent(draftId)}/reoptimise`, { time_limit_s: seconds }),
      { clearMessage: true });
    if (started && started.job) {
      startJob(started.job, 'Ré-optimisation', async () => {
        await openDraft(draftId);
      });
    }
  });

  // ------------------------------------------------------------------ save and publish
  $('save-button').addEventListener('click', async () => {
    if (!S.draft || S.busy || S.job) {
      return;
    }
    S.busy = true;
    updateControls();
    const out = $('save-result');
    clear(out);
    try {
      const saved = await call(() => api('POST', `/api/drafts/${encodeURIComponent(S.draft.id)}/save`, { note: $('save-note').value }),
        { clearMessage: true });
      if (!saved) {
        return;
      }
      S.lastSaved = saved.plan_id;
      out.dataset.plan = saved.plan_id || '';
      out.dataset.valid = saved.valid ? 'true' : 'false';
      out.appendChild(h('p', { class: saved.valid ? 'ok' : 'bad', testid: 'save-message' },
        'Plan enregistré : ', h('strong', { text: saved.plan_id }),
        saved.valid ? ' — valide, publiable.' : ' — non valide : il ne pourra pas être publié.'));
      const violations = saved.violations || [];
      if (violations.length) {
        out.appendChild(h('ul', { class: 'violations', testid: 'save-violations' },
          violations.map((v) => h('li', { text: typeof v === 'string' ? v : (v.message || JSON.stringify(v)) }))));
      }
      await loadPlans();
    } finally {
      S.busy = false;
      updateControls();
    }
  });

  $('publish-plan').addEventListener('change', updateControls);
  $('publish-button').addEventListener('click', async () => {
    const planId = $('publish-plan').value;
    const day = $('publish-date').value;
    const out = $('publish-result');
    clear(out);
    if (!planId) {
      out.appendChild(h('p', { class: 'bad', text: 'Enregistrez d’abord un plan valide.' }));
      return;
    }
    if (!day) {
      out.appendChild(h('p', { class: 'bad', text: 'Choisissez la date d’entrée en vigueur.' }));
      return;
    }
    const done = await call(() => api('POST', `/api/plans/${encodeURIComponent(planId)}/publish`,
      { effective_from: day, note: $('publish-note').value }), { clearMessage: true });
    if (!done) {
      return;
    }
    out.appendChild(h('p', { class: 'ok', testid: 'publish-message' },
      'Plan ', h('strong', { text: done.plan_id }), ` publié : en vigueur à partir du ${frDate(done.effective_from)}.`));
    await loadPlans();
  });

  // ------------------------------------------------------------------ demand of the year
  S.demandUpload = null;
  $('demand-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('demand-result');
    clear(out);
    S.demandUpload = null;
    $('demand-rerun-box').hidden = true;
    const file = $('demand-file').files[0];
    if (!file) {
      out.appendChild(h('p', { class: 'bad', text: 'Choisissez un fichier CSV ou XLSX.' }));
      return;
    }
    if (file.size > 5 * 1024 * 1024) {
      out.appendChild(h('p', { class: 'bad', text: 'Le fichier dépasse 5 Mo.' }));
      return;
    }
    $('demand-upload').disabled = true;
    try {
      const data = await call(() => api('POST', `/api/demand?filename=${encodeURIComponent(file.name)}`, file,
        { raw: true, allowStatus: [400, 422] }), { clearMessage: true });
      if (!data) {
        return;
      }
      renderDemand(data);
    } finally {
      $('demand-upload').disabled = false;
      updateControls();
    }
  });

  function renderDemand(data) {
    const out = $('demand-result');
    clear(out);
    if (!Array.isArray(data.problems) && data.detail) {
      out.appendChild(h('p', { class: 'bad', text: typeof data.detail === 'string' ? data.detail : JSON.stringify(data.detail) }));
      return;
    }
    out.dataset.ok = data.ok ? 'true' : 'false';
    out.appendChild(h('p', { class: data.ok ? 'ok' : 'bad', testid: 'demand-message' },
      data.ok ? `Fichier accepté : ${fmt(data.communes || 0, 0)} communes.` : 'Fichier refusé : corrigez les problèmes ci-dessous.'));
    const problems = data.problems || [];
    if (problems.length) {
      out.appendChild(h('table', { class: 'demand-problems', testid: 'demand-problems' },
        h('caption', { text: `${problems.length} problème${problems.length > 1 ? 's' : ''}` }),
        h('thead', null, h('tr', null, h('th', { scope: 'col', text: 'Ligne' }), h('th', { scope: 'col', text: 'Colonne' }),
          h('th', { scope: 'col', text: 'Message' }))),
        h('tbody', null, problems.map((p) => h('tr', { testid: 'demand-problem' },
          h('td', { class: 'num', text: p.row === null || p.row === undefined ? '—' : p.row }),
          h('td', { text: p.column || '—' }),
          h('td', { text: p.message || '' }))))));
    }
    const totals = Object.entries(data.totals || {});
    if (totals.length) {
      out.appendChild(h('table', { class: 'demand-totals', testid: 'demand-totals' },
        h('caption', { text: 'Totaux par rôle' }),
        h('tbody', null, totals.map(([role, value]) => h('tr', null, h('th', { scope: 'row', text: role }),
          h('td', { class: 'num', text: fmt(value, 1) }))))));
    }
    const notes = data.notes || [];
    if (notes.length) {
      out.appendChild(h('ul', { class: 'notes' }, notes.map((n) => h('li', { text: typeof n === 'string' ? n : JSON.stringify(n) }))));
    }
    if (data.ok && data.upload) {
      S.demandUpload = data.upload;
      $('demand-rerun-box').hidden = false;
    }
    updateControls();
  }

  $('demand-rerun').addEventListener('click', async () => {
    if (!S.demandUpload || S.job) {
      return;
    }
    const seconds = Number($('demand-time').value) || 30;
    const started = await call(() => api('POST', `/api/demand/${encodeURIComponent(S.demandUpload)}/rerun`, { time_limit_s: seconds }),
      { clearMessage: true });
    if (started && started.job) {
      startJob(started.job, 'Sectorisation', async (job) => {
        if (job.state !== 'done') {
          return;
        }
        await loadPlans();
        const result = job.result || {};
        if (result.draft) {
          await openDraft(result.draft);
          showMessage(`Nouveau plan ${result.plan_id || ''} calculé ; il est ouvert en brouillon.`, 'info');
        } else if (result.plan_id) {
          $('plan-select').value = result.plan_id;
          await showPlan(result.plan_id);
        }
      });
    }
  });

  // ------------------------------------------------------------------ start
  async function start() {
    renderReview(null);
    updateControls();
    const me = await call(() => api('GET', '/api/me'));
    if (me && me.user) {
      S.me = { user: me.user, role: me.role };
      await showEditor();
    } else {
      showLogin('');
    }
  }

  const ready = start();

  window.studio = {
    /** Replaces the selection with these INSEE codes; returns the selection kept (known codes). */
    selectUnits(insees) {
      return setSelection(Array.from(insees || []));
    },
    selection() {
      return [...S.selection];
    },
    /** The current DraftState (as last answered by the server), or null. */
    state() {
      return S.draft;
    },
    idle() {
      return new Promise((resolve) => {
        idleWaiters.push(resolve);
        setTimeout(settleIdle, 0);
      });
    },
    openDraft,
    /** The Leaflet map (for tests and debugging). */
    map() {
      return map;
    },
    ready,
  };
}());
