/* Shared helpers of the desk and the studio (plain ES2020, no build step).
 *
 * - SZ.api(method, url, body, options): fetch() with same-origin credentials, the
 *   X-CSRF-Token header on every non-GET request, JSON in and out; a 4xx/5xx answer
 *   throws SZ.ApiError whose message is the server's `detail`.
 * - SZ.h(tag, attrs, ...children): builds DOM nodes; strings become text nodes (never HTML).
 * - SZ.createMap / SZ.loadUnits: a Leaflet map on a canvas renderer, no basemap, with one
 *   polygon layer per unit (Map insee -> layer).
 */
'use strict';

(function () {
  const FALLBACK_COLOURS = [
    '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948',
    '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac', '#86bcb6', '#d37295',
  ];
  const GROUP_COLOURS = ['#3b6fb6', '#e08a2c', '#4e9a4a', '#b54a7c', '#7f7f7f'];
  const NO_SECTOR_COLOUR = '#d9d9d9';

  function getCookie(name) {
    const prefix = name + '=';
    for (const part of document.cookie.split(';')) {
      const item = part.trim();
      if (item.startsWith(prefix)) {
        return decodeURIComponent(item.slice(prefix.length));
      }
    }
    return '';
  }

  class ApiError extends Error {
    constructor(status, message, body, headers) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.body = body;
      this.headers = headers || null;
    }
  }

  function detailText(data, status) {
    if (data && typeof data === 'object') {
      const detail = data.detail !== undefined ? data.detail : data.message;
      if (typeof detail === 'string' && detail) {
        return detail;
      }
      if (Array.isArray(detail)) {
        // FastAPI validation errors: [{loc, msg, type}, ...]
        const parts = detail.map((d) => (d && typeof d === 'object'
          ? [Array.isArray(d.loc) ? d.loc.join('.') : '', d.msg || ''].filter(Boolean).join(' : ')
          : String(d)));
        return parts.join(' ; ') || `Erreur ${status}`;
      }
      if (detail && typeof detail === 'object') {
        return JSON.stringify(detail);
      }
    }
    if (status === 0) {
      return 'Le serveur ne répond pas.';
    }
    return `Erreur ${status}`;
  }

  /**
   * Calls the app's HTTP API.
   * @param {string} method GET, POST...
   * @param {string} url path and query
   * @param {*} [body] JSON-serialisable object, or with options.raw a Blob/File/string sent as is
   * @param {{raw?: boolean, allowStatus?: number[]}} [options] allowStatus: statuses answered with their JSON body instead of an error
   */
  async function api(method, url, body, options = {}) {
    const headers = { Accept: 'application/json' };
    const init = { method, credentials: 'same-origin', headers, cache: 'no-cache' };
    if (method !== 'GET' && method !== 'HEAD') {
      headers['X-CSRF-Token'] = getCookie('csrf_token');
    }
    if (body !== undefined && body !== null) {
      if (options.raw) {
        headers['Content-Type'] = 'application/octet-stream';
        init.body = body;
      } else {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, detailText(null, 0), null, null);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (err) {
        data = null;
      }
    }
    if (!response.ok && !(options.allowStatus || []).includes(response.status)) {
      throw new ApiError(response.status, detailText(data, response.status), data, response.headers);
    }
    return data;
  }

  /** Creates an element; attrs: {class, text, dataset:{}, on:{event: fn}, ...attributes}. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) {
          continue;
        }
        if (key === 'class') {
          el.className = value;
        } else if (key === 'text') {
          el.textContent = String(value);
        } else if (key === 'dataset') {
          for (const [k, v] of Object.entries(value)) {
            el.dataset[k] = String(v);
          }
        } else if (key === 'on') {
          for (const [event, fn] of Object.entries(value)) {
            el.addEventListener(event, fn);
          }
        } else if (key === 'testid') {
          el.setAttribute('data-testid', String(value));
        } else if (value === true) {
          el.setAttribute(key, '');
        } else {
          el.setAttribute(key, String(value));
        }
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) {
        continue;
      }
      el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function clear(el) {
    while (el.firstChild) {
      el.removeChild(el.firstChild);
    }
    return el;
  }

  function todayIso() {
    const d = new Date();
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  /** "2027-01-01" -> "01/01/2027"; null/empty -> fallback. */
  function frDate(iso, fallback = '—') {
    if (!iso) {
      return fallback;
    }
    const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(iso));
    return m ? `${m[3]}/${m[2]}/${m[1]}` : String(iso);
  }

  function fmt(value, digits = 1) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) {
      return '—';
    }
    return Number(value).toLocaleString('fr-FR', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  function signedPct(value, digits = 1) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) {
      return '—';
    }
    const v = Number(value);
    return `${v > 0 ? '+' : ''}${fmt(v, digits)} %`;
  }

  function debounce(fn, ms) {
    let timer = null;
    return function debounced(...args) {
      if (timer !== null) {
        clearTimeout(timer);
      }
      timer = setTimeout(() => {
        timer = null;
        fn.apply(this, args);
      }, ms);
    };
  }

  /** Sector id -> colour, from the plan's sectors (falls back to a fixed palette). */
  function sectorColours(sectors) {
    const colours = new Map();
    (sectors || []).forEach((s, i) => {
      colours.set(s.sector, s.color || FALLBACK_COLOURS[i % FALLBACK_COLOURS.length]);
    });
    return colours;
  }

  /** Group id -> colour (groups in the order they first appear). */
  function groupColours(sectors) {
    const colours = new Map();
    for (const s of sectors || []) {
      if (s.group !== undefined && s.group !== null && !colours.has(s.group)) {
        colours.set(s.group, GROUP_COLOURS[colours.size % GROUP_COLOURS.length]);
      }
    }
    return colours;
  }

  /** A Leaflet map without basemap, drawn on one canvas. */
  function createMap(element, extra = {}) {
    const renderer = L.canvas({ padding: 0.3, tolerance: 1 });
    const map = L.map(element, Object.assign({
      preferCanvas: true,
      renderer,
      attributionControl: false,
      zoomSnap: 0.1,
      zoomDelta: 0.5,
      wheelPxPerZoomLevel: 90,
      minZoom: 5,
      maxZoom: 14,
      keyboard: true,
    }, extra));
    map.setView([45.5, 4.6], 7);
    map._szRenderer = renderer;
    if (window.ResizeObserver) {
      // the panels around the map change its size without any window resize
      new ResizeObserver(() => map.invalidateSize({ pan: false })).observe(element);
    }
    return map;
  }

  /**
   * Draws the unit polygons. Returns {group, layers: Map insee->layer, bounds}.
   * style(insee) gives each layer's style; onClick(event, insee) is called on a click.
   */
  function loadUnits(map, geojson, style, handlers = {}) {
    const layers = new Map();
    const group = L.geoJSON(geojson, {
      renderer: map._szRenderer,
      style: (feature) => Object.assign({ bubblingMouseEvents: false }, style(feature.properties.insee)),
      onEachFeature: (feature, layer) => {
        layers.set(String(feature.properties.insee), layer);
      },
    });
    if (handlers.click) {
      group.on('click', (e) => {
        const insee = e.layer && e.layer.feature ? String(e.layer.feature.properties.insee) : null;
        if (insee) {
          handlers.click(e, insee);
        }
      });
    }
    if (handlers.hover) {
      group.on('mouseover', (e) => {
        const insee = e.layer && e.layer.feature ? String(e.layer.feature.properties.insee) : null;
        handlers.hover(insee, e.layer);
      });
      group.on('mouseout', () => handlers.hover(null, null));
    }
    group.addTo(map);
    const bounds = group.getBounds();
    if (bounds.isValid()) {
      // not animated: Leaflet drops a view asked for during a zoom animation (the first answer's zoom)
      map.fitBounds(bounds, { padding: [10, 10], animate: false });
    }
    return { group, layers, bounds };
  }

  /** A small text box on the map (bottom left) showing what the pointer is over. */
  function infoControl(map) {
    const Info = L.Control.extend({
      options: { position: 'bottomleft' },
      onAdd() {
        const div = L.DomUtil.create('div', 'map-info');
        div.setAttribute('aria-hidden', 'true');
        this._div = div;
        return div;
      },
      set(text) {
        if (this._div) {
          this._div.textContent = text || '';
          this._div.classList.toggle('empty', !text);
        }
      },
    });
    const info = new Info();
    info.addTo(map);
    info.set('');
    return info;
  }

  function featureLabel(layer) {
    if (!layer || !layer.feature) {
      return '';
    }
    const p = layer.feature.properties;
    return `${p.name} (${p.insee}${p.dep ? ', dép. ' + p.dep : ''})`;
  }

  window.SZ = {
    api, ApiError, h, append, clear, getCookie, todayIso, frDate, fmt, signedPct, debounce,
    sectorColours, groupColours, createMap, loadUnits, infoControl, featureLabel,
    NO_SECTOR_COLOUR, FALLBACK_COLOURS,
  };
}());
