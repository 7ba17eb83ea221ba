/* Referral desk: find the referent social worker of a commune (anonymous page).
 *
 * Calls GET /api/suggest, /api/route, /api/plan and /api/geometry (see the app's OpenAPI).
 * Hook for tests: window.desk.search(text) -> Promise of the /api/route answer;
 * window.desk.ready -> Promise resolved once the map is drawn.
 */
'use strict';

(function () {
  const { api, h, clear, frDate, fmt, debounce } = window.SZ;

  const STATUS_TEXT = {
    routed: '',
    ambiguous: 'Plusieurs secteurs possibles : le secteur principal est indiqué, vérifiez avec la commune exacte.',
    outside_region: 'Commune hors Auvergne-Rhône-Alpes : règle applicable hors région.',
    choose: 'Plusieurs communes correspondent : choisissez la bonne.',
    not_found: 'Aucune commune trouvée.',
    invalid: 'Saisie non valide.',
  };

  const form = document.getElementById('search-form');
  const input = document.getElementById('search-input');
  const list = document.getElementById('suggestions');
  const dateInput = document.getElementById('date-input');
  const resultBox = document.getElementById('result');
  const result = document.getElementById('result-body');
  const legend = document.getElementById('legend');
  const planInfo = document.getElementById('plan-info');
  const mapStatus = document.getElementById('map-status');

  // Empty date = the server's today (Europe/Paris); the answer says which day was used.

  // ------------------------------------------------------------------ combobox
  let options = [];
  let active = -1;
  let suggestSeq = 0;

  function closeList() {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  }

  function setActive(index) {
    const items = list.querySelectorAll('[role="option"]');
    items.forEach((item, i) => {
      const on = i === index;
      item.setAttribute('aria-selected', on ? 'true' : 'false');
      item.classList.toggle('active', on);
    });
    active = index;
    if (index >= 0 && items[index]) {
      input.setAttribute('aria-activedescendant', items[index].id);
      items[index].scrollIntoView({ block: 'nearest' });
    } else {
      input.removeAttribute('aria-activedescendant');
    }
  }

  function showSuggestions(items) {
    options = items;
    clear(list);
    if (!items.length) {
      closeList();
      return;
    }
    items.forEach((item, i) => {
      const kind = item.kind === 'postcode' ? 'code postal' : (item.kind === 'insee' ? 'code INSEE' : 'commune');
      list.appendChild(h('li', {
        id: `suggestion-${i}`,
        role: 'option',
        'aria-selected': 'false',
        class: 'option',
        testid: 'suggestion',
        dataset: { q: item.q || '', insee: item.insee || '', kind: item.kind || '' },
        on: {
          mousedown: (e) => e.preventDefault(), // keep the focus in the box
          click: () => choose(i),
        },
      }, h('span', { class: 'option-label', text: item.label }), h('span', { class: 'option-kind', text: kind })));
    });
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    setActive(-1);
  }

  async function fetchSuggestions() {
    const text = input.value.trim();
    const seq = ++suggestSeq;
    if (!text) {
      showSuggestions([]);
      return;
    }
    try {
      const data = await api('GET', `/api/suggest?q=${encodeURIComponent(text)}`);
      if (seq !== suggestSeq || document.activeElement !== input) {
        return;
      }
      showSuggestions((data && data.suggestions) || []);
    } catch (err) {
      if (seq === suggestSeq) {
        showSuggestions([]);
      }
    }
  }

  const fetchSuggestionsSoon = debounce(fetchSuggestions, 120);

  function choose(index) {
    const item = options[index];
    if (!item) {
      return;
    }
    suggestSeq++; // drop suggestions still on their way
    input.value = item.label;
    closeList();
    route({ q: item.q || (item.insee ? `insee:${item.insee}` : item.label) }, { fit: true });
  }

  input.addEventListener('input', () => fetchSuggestionsSoon());
  input.addEventListener('keydown', (e) => {
    const open = !list.hidden && options.length > 0;
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      if (!open) {
        if (options.length) {
          list.hidden = false;
          input.setAttribute('aria-expanded', 'true');
          setActive(0);
        } else {
          fetchSuggestions();
        }
        return;
      }
      setActive(active + 1 >= options.length ? 0 : active + 1);
    } else if (e.key === 'ArrowUp') {
      if (open) {
        e.preventDefault();
        setActive(active <= 0 ? options.length - 1 : active - 1);
      }
    } else if (e.key === 'Enter') {
      if (open && active >= 0) {
        e.preventDefault();
        choose(active);
      } else {
        closeList();
      }
    } else if (e.key === 'Escape') {
      if (open) {
        e.preventDefault();
        closeList();
      }
    } else if (e.key === 'Tab') {
      closeList();
    }
  });
  input.addEventListener('blur', () => {
    setTimeout(closeList, 100);
  });

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    suggestSeq++;
    closeList();
    const text = input.value.trim();
    if (!text) {
      showMessage('Saisissez une commune, un code postal ou un code INSEE.', 'error');
      input.focus();
      return;
    }
    route({ q: text }, { fit: true });
  });

  dateInput.addEventListener('change', () => {
    loadPlan();
    if (lastParams) {   // the answer shown follows the day asked
      route(lastParams, { fit: false });
    }
  });

  // ------------------------------------------------------------------ result
  function showMessage(text, kind = 'info') {
    clear(result);
    resultBox.dataset.status = kind === 'error' ? 'error' : '';
    result.appendChild(h('p', { class: `message ${kind}`, testid: 'result-message', role: kind === 'error' ? 'alert' : null, text }));
  }

  function field(label, value, testid) {
    return [h('dt', { text: label }), h('dd', { testid, text: value === null || value === undefined || value === '' ? '—' : value })];
  }

  function render(data) {
    clear(result);
    const status = data.status || '';
    resultBox.dataset.status = status;
    const head = [];
    if (data.query) {
      // a suggestion or a choice carries "insee:CODE" / "cp:CODE": show what the box shows instead
      const shown = /^(insee|cp):/i.test(data.query) && input.value ? input.value : data.query;
      head.push(h('p', { class: 'query', testid: 'result-query' }, 'Recherche : « ', shown, ' »',
        data.on ? ` — demande du ${frDate(data.on)}` : ''));
    }
    if (STATUS_TEXT[status]) {
      head.push(h('p', { class: `status status-${status}`, testid: 'result-status', text: STATUS_TEXT[status] }));
    }
    if ((status === 'invalid' || status === 'not_found') && (data.message || data.rule)) {
      head.push(h('p', { class: 'message error', testid: 'result-message', text: data.message || data.rule }));
    }
    result.append(...head);

    if (data.worker_name || data.sector) {
      result.appendChild(h('div', { class: 'referent' },
        h('p', { class: 'referent-label', text: 'Référent' }),
        h('p', { class: 'worker', testid: 'result-worker', text: data.worker_name || data.worker_id || '—' }),
        data.worker_id && data.worker_name ? h('p', { class: 'worker-id', text: `Identifiant : ${data.worker_id}` }) : null));
      const commune = data.name ? `${data.name}${data.insee ? ` (INSEE ${data.insee})` : ''}` : (data.insee || '');
      result.appendChild(h('dl', { class: 'facts' },
        field('Secteur', data.sector, 'result-sector'),
        field('Groupe', data.group, 'result-group'),
        field('Commune', commune + (data.dep ? ` — département ${data.dep}` : ''), 'result-commune'),
        field('Règle appliquée', data.rule, 'result-rule')));
    }

    const candidates = data.candidates || [];
    if (candidates.length > 1) {
      const rows = candidates.map((c) => h('tr', { testid: 'candidate', dataset: { sector: c.sector || '', share: c.share ?? '' } },
        h('td', { text: c.sector || '—' }),
        h('td', { text: c.group || '—' }),
        h('td', { text: c.worker_name || c.worker_id || '—' }),
        h('td', { class: 'num', text: c.share === null || c.share === undefined ? '—' : `${fmt(c.share * 100, 1)} %` })));
      result.appendChild(h('section', { class: 'candidates', 'aria-label': 'Secteurs possibles' },
        h('h3', { text: 'Secteurs possibles' }),
        h('table', { testid: 'candidates' },
          h('thead', null, h('tr', null, h('th', { scope: 'col', text: 'Secteur' }), h('th', { scope: 'col', text: 'Groupe' }),
            h('th', { scope: 'col', text: 'Référent' }), h('th', { scope: 'col', text: 'Part' }))),
          h('tbody', null, rows))));
    }

    const choices = data.choices || [];
    if (choices.length) {
      result.appendChild(h('section', { class: 'choices', 'aria-label': 'Communes possibles' },
        h('h3', { text: 'Précisez la commune' }),
        h('ul', { class: 'choice-list' }, choices.map((c) => h('li', null,
          h('button', {
            type: 'button',
            class: 'choice',
            testid: 'choice',
            dataset: { insee: c.insee || '' },
            on: {
              click: () => {
                input.value = c.label || c.insee || '';
                route({ q: c.q || (c.insee ? `insee:${c.insee}` : c.label) }, { fit: true });
              },
            },
          }, c.label || c.insee))))));
    }

    if (data.plan && data.plan.id) {
      const p = data.plan;
      result.appendChild(h('p', { class: 'plan', testid: 'result-plan' },
        'Plan en vigueur : ', h('strong', { text: p.id }),
        ` — du ${frDate(p.effective_from, '(sans date)')}`,
        p.effective_to ? ` au ${frDate(p.effective_to)}` : ', sans date de fin'));
    }

    const later = data.later || [];
    if (later.length) {
      result.appendChild(h('section', { class: 'later', testid: 'result-later', 'aria-label': 'Plans à venir' },
        h('h3', { text: 'Changements à venir' }),
        h('ul', null, later.map((l) => h('li', { testid: 'later-row', dataset: { plan: l.plan_id || '' } },
          `À partir du ${frDate(l.effective_from)} (plan ${l.plan_id}) : `,
          h('strong', { text: l.worker_name || l.worker_id || '—' }),
          ` — secteur ${l.sector || '—'}, groupe ${l.group || '—'}`)))));
    }
  }

  let routeSeq = 0;

  let lastParams = null;

  async function route(params, opts = {}) {
    const seq = ++routeSeq;
    lastParams = params;
    const qs = new URLSearchParams(params);
    if (dateInput.value) {
      qs.set('on', dateInput.value);
    }
    resultBox.setAttribute('aria-busy', 'true');
    let data;
    try {
      data = await api('GET', `/api/route?${qs}`, undefined, { allowStatus: [400, 404, 422] });
    } catch (err) {
      if (seq === routeSeq) {
        resultBox.removeAttribute('aria-busy');
        showMessage(err.message, 'error');
        highlight(null);
      }
      return null;
    }
    if (seq !== routeSeq) {
      return data;
    }
    resultBox.removeAttribute('aria-busy');
    if (!data || !data.status) {
      showMessage((data && (data.detail || data.message)) || 'Réponse inattendue du serveur.', 'error');
      highlight(null);
      return data;
    }
    render(data);
    highlight(data.insee || null, opts);
    return data;
  }

  // ------------------------------------------------------------------ map
  let map = null;
  let units = null;
  let colours = new Map();
  let assignment = {};
  let highlightLayer = null;
  let clickMarker = null;
  let info = null;

  function unitStyle(insee) {
    const sector = assignment[insee];
    return {
      fillColor: (sector && colours.get(sector)) || window.SZ.NO_SECTOR_COLOUR,
      fillOpacity: 0.75,
      color: '#8c8c8c',
      weight: 0.4,
      opacity: 0.9,
    };
  }

  function recolour() {
    if (!units) {
      return;
    }
    for (const [insee, layer] of units.layers) {
      layer.setStyle(unitStyle(insee));
    }
  }

  function highlight(insee, opts = {}) {
    if (highlightLayer) {
      highlightLayer.remove();
      highlightLayer = null;
    }
    if (!map || !units || !insee) {
      return;
    }
    const layer = units.layers.get(String(insee));
    if (!layer) {
      return;
    }
    highlightLayer = L.geoJSON(layer.feature, {
      renderer: map._szRenderer,
      interactive: false,
      style: () => ({ color: '#111111', weight: 3.5, fill: true, fillOpacity: 0, opacity: 1 }),
    }).addTo(map);
    if (opts.fit) {
      map.fitBounds(layer.getBounds(), { maxZoom: 10, padding: [40, 40] });
    }
  }

  function routePoint(latlng) {
    const lat = Math.round(latlng.lat * 1e5) / 1e5;
    const lon = Math.round(latlng.lng * 1e5) / 1e5;
    if (clickMarker) {
      clickMarker.remove();
    }
    clickMarker = L.circleMarker([lat, lon], {
      renderer: map._szRenderer, radius: 4, color: '#111', weight: 1.5, fillColor: '#fff', fillOpacity: 1, interactive: false,
    }).addTo(map);
    input.value = '';
    route({ lat: String(lat), lon: String(lon) });
  }

  function renderLegend(plan) {
    clear(legend);
    const byGroup = new Map();
    for (const s of plan.sectors || []) {
      if (!byGroup.has(s.group)) {
        byGroup.set(s.group, []);
      }
      byGroup.get(s.group).push(s);
    }
    for (const [group, sectors] of byGroup) {
      legend.appendChild(h('li', { class: 'legend-group' },
        h('span', { class: 'legend-group-name', text: `Groupe ${group ?? '—'}` }),
        h('ul', null, sectors.map((s) => {
          const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
          swatch.style.backgroundColor = colours.get(s.sector) || window.SZ.NO_SECTOR_COLOUR;
          return h('li', { testid: `legend-${s.sector}` }, swatch, h('strong', { text: s.sector }), ` ${s.worker_name || s.worker_id || ''}`);
        }))));
    }
  }

  async function loadPlan() {
    const on = dateInput.value;
    try {
      const plan = await api('GET', `/api/plan${on ? `?on=${encodeURIComponent(on)}` : ''}`);
      colours = window.SZ.sectorColours(plan.sectors);
      assignment = plan.assignment || {};
      planInfo.textContent = `Plan ${plan.id || '—'}, en vigueur du ${frDate(plan.effective_from, '(sans date)')}`
        + (plan.effective_to ? ` au ${frDate(plan.effective_to)}` : ', sans date de fin')
        + ` (carte au ${frDate(plan.on || on, "aujourd'hui")})`;
      renderLegend(plan);
    } catch (err) {
      colours = new Map();
      assignment = {};
      clear(legend);
      planInfo.textContent = err.message;
    }
    recolour();
  }

  async function initMap() {
    map = window.SZ.createMap(document.getElementById('map'));
    info = window.SZ.infoControl(map);
    map.on('click', (e) => routePoint(e.latlng));
    mapStatus.textContent = 'Chargement de la carte…';
    const planLoaded = loadPlan();
    let geometry;
    try {
      geometry = await api('GET', '/api/geometry');
    } catch (err) {
      mapStatus.textContent = `Carte indisponible : ${err.message}`;
      return;
    }
    await planLoaded;
    units = window.SZ.loadUnits(map, geometry, unitStyle, {
      click: (e) => routePoint(e.latlng),
      hover: (insee, layer) => {
        if (!insee) {
          info.set('');
          return;
        }
        const sector = assignment[insee];
        info.set(`${window.SZ.featureLabel(layer)}${sector ? ` — secteur ${sector}` : ''}`);
      },
    });
    mapStatus.textContent = `${units.layers.size} communes. Cliquez sur la carte pour trouver le référent.`;
  }

  const ready = initMap();

  window.desk = {
    /** Types `text` in the search box and routes it; resolves with the /api/route answer. */
    search(text) {
      input.value = text;
      suggestSeq++;
      closeList();
      return route({ q: text }, { fit: true });
    },
    ready,
  };
}());
