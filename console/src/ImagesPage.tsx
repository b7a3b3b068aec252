import { FilterFilled, SearchOutlined } from '@ant-design/icons';
import { App as AntApp, Badge, Button, Input, Progress, Radio, Select, Space, Table, Tabs, Typography } from 'antd';
import type { ColumnsType, TablePaginationConfig } from 'antd/es/table';
import type { FilterDropdownProps, FilterValue, SorterResult } from 'antd/es/table/interface';
import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, BUSY_PHASES, type Counts, errorText, formatBytes, type Image, type Me, may, session, type Zone } from './api/client';
import { LinkButton, SPACE_VERTICAL, SPACE_WRAP, SpaceItems, TAG, tagClass, TEXT, TEXT_DANGER, TEXT_SECONDARY, TipLayer } from './cells';
import { OS_CATEGORIES } from './constants';
import { type Key, useT } from './i18n';
import { watchEvents } from './live';

// The dialogs (create with its file picker, edit, delete, launch) are a chunk of their own, loaded when one
// opens (and prefetched once the table has shown), so the first screen's JavaScript stays small.
const loadDialogs = () => import('./dialogs');
const CreateDialog = lazy(() => loadDialogs().then((m) => ({ default: m.CreateDialog })));
const EditDialog = lazy(() => loadDialogs().then((m) => ({ default: m.EditDialog })));
const DeleteDialog = lazy(() => loadDialogs().then((m) => ({ default: m.DeleteDialog })));
const LaunchDialog = lazy(() => loadDialogs().then((m) => ({ default: m.LaunchDialog })));

type View = 'all' | 'featured' | 'public' | 'private';
interface State {
  view: View;
  page: number;
  pageSize: number;
  sort?: 'name' | 'createdAt' | 'sizeBytes';
  order?: 'asc' | 'desc';
  tags: string[];
  kind?: 'IMAGE' | 'ISO';
  q?: string;
  name?: string;
  osCategory?: string;
  hypervisor?: string;
}

interface First {
  key: string;
  token: string;
  list: Promise<{ items: Image[]; total: number } | null>;
  counts: Promise<Counts | null>;
  /** set by index.html when the answers are in: the first render can show them without waiting for a promise */
  listData?: { items: Image[]; total: number } | null;
  countsData?: Counts | null;
  /** the zones (their names in the table), whatever the filters */
  zonesData?: { items: Zone[] } | null;
}
/**
 * The answers index.html asked for while the scripts loaded (window.__hcmFirst), used once, and only when
 * they answer exactly this state (no filter, no sort, same view and page) for the current token; otherwise
 * (or when either failed) the page asks again.
 */
type ListRes = { data?: { items: Image[]; total: number }; error?: unknown; response: { status: number } };
interface Early {
  list: Promise<ListRes>;
  counts: Promise<{ data?: Counts }>;
  /** both answers, when they were already in as the page first rendered (one render instead of two) */
  ready?: { list: { items: Image[]; total: number }; counts: Counts };
}
function takeFirst(st: State): Early | undefined {
  const w = window as unknown as { __hcmFirst?: First };
  const f = w.__hcmFirst;
  w.__hcmFirst = undefined;
  if (f?.token === session.token && f.zonesData) firstZones = f.zonesData.items;
  if (!f || f.token !== session.token || st.sort || st.order || st.tags.length || st.kind || st.q || st.name || st.osCategory || st.hypervisor)
    return undefined;
  if (f.key !== `view=${encodeURIComponent(st.view)}&page=${st.page}&pageSize=${st.pageSize}`) return undefined;
  return {
    list: f.list.then((d): ListRes | Promise<ListRes> =>
      d ? { data: d, response: { status: 200 } } : api.GET('/images', { params: { query: { view: st.view, page: st.page, pageSize: st.pageSize } } }),
    ),
    counts: f.counts.then((d): { data?: Counts } | Promise<{ data?: Counts }> => (d ? { data: d } : api.GET('/images/counts', {}))),
    ready: f.listData && f.countsData ? { list: f.listData, counts: f.countsData } : undefined,
  };
}
let firstZones: Zone[] | undefined;
/** rows in the first render: a 1280 x 800 window shows 5 of them, a taller one up to 8 */
const FIRST_ROWS = 8;
const markData = () => {
  if (!performance.getEntriesByName('hcm:data').length) performance.mark('hcm:data');
};

/** The page's state lives in the URL (?view=&page=&tags=...), so a view can be shared and reloaded. */
function readUrl(me: Me): State {
  const u = new URLSearchParams(location.search);
  const s = (k: string) => u.get(k) || undefined;
  return {
    view: (s('view') as View) ?? (me.role === 'super_admin' ? 'all' : 'featured'),
    page: Number(s('page') ?? 1) || 1,
    pageSize: Number(s('pageSize') ?? 20) || 20,
    sort: s('sort') as State['sort'],
    order: s('order') as State['order'],
    tags: u.getAll('tags'),
    kind: s('kind') as State['kind'],
    q: s('q'),
    name: s('name'),
    osCategory: s('osCategory'),
    hypervisor: s('hypervisor'),
  };
}
function writeUrl(st: State) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(st)) {
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else if (v !== undefined && v !== '' && !(k === 'page' && v === 1) && !(k === 'pageSize' && v === 20)) u.set(k, String(v));
  }
  const qs = u.toString();
  if (location.search !== (qs ? `?${qs}` : '')) history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
}

/**
 * A header filter's trigger: a real button (antd's own trigger is a span outside the tab order, with no name),
 * named "筛选：<column>" / "Filter: <column>"; Enter or Space opens the column's filter.
 */
function FilterTrigger({ column, label, filtered }: { column: string; label: string; filtered: boolean }) {
  return (
    <button
      type="button"
      className="hcm-filter-trigger"
      aria-label={label}
      aria-haspopup="dialog"
      data-filter-trigger={column}
      data-filtered={filtered || undefined}
    >
      <FilterFilled aria-hidden />
    </button>
  );
}
const focusTrigger = (column: string) =>
  requestAnimationFrame(() => document.querySelector<HTMLElement>(`.ant-table-thead [data-filter-trigger=${column}]`)?.focus());
/** Focuses `el()` once the filter's popup is shown (it is mounted hidden, then animated in). */
function useFocusWhenOpen(open: boolean, el: () => HTMLElement | null | undefined) {
  useEffect(() => {
    if (!open) return;
    let tries = 0;
    let id = 0;
    const go = () => {
      const e = el();
      if (e && e.offsetParent !== null) e.focus();
      else if (tries++ < 30) id = requestAnimationFrame(go);
    };
    id = requestAnimationFrame(go);
    return () => cancelAnimationFrame(id);
  }, [open]); // el is read when the popup opens, not a dependency
}

/**
 * A header filter with one choice (OS, virtualization) that works by keyboard: the focus lands on the chosen (or
 * first) value, the arrow keys move, Enter applies, Escape closes; the trigger gets the focus back.
 */
function ChoiceFilter({ column, label, values, p, t }: { column: string; label: string; values: string[]; p: FilterDropdownProps; t: (k: Key) => string }) {
  const box = useRef<HTMLDivElement>(null);
  useFocusWhenOpen(
    p.visible,
    () => box.current?.querySelector<HTMLInputElement>('input[type=radio]:checked') ?? box.current?.querySelector<HTMLInputElement>('input[type=radio]'),
  );
  const apply = () => (p.confirm(), focusTrigger(column));
  return (
    <div
      ref={box}
      role="group"
      aria-label={label}
      style={{ padding: 8 }}
      onKeyDown={(e) => {
        e.stopPropagation();
        if (e.key === 'Escape') (p.close(), focusTrigger(column));
        else if (e.key === 'Enter' && (e.target as HTMLElement).tagName === 'INPUT') (e.preventDefault(), apply());
      }}
    >
      <Radio.Group
        value={p.selectedKeys[0]}
        onChange={(e) => p.setSelectedKeys([e.target.value as string])}
        style={{ display: 'flex', flexDirection: 'column', maxHeight: 280, overflowY: 'auto' }}
      >
        {values.map((v) => (
          <Radio key={v} value={v}>
            {v}
          </Radio>
        ))}
      </Radio.Group>
      <Space style={{ marginTop: 8, width: '100%', justifyContent: 'space-between' }}>
        <Button
          size="small"
          type="link"
          disabled={!p.selectedKeys.length}
          onClick={() => (p.clearFilters?.({ confirm: true, closeDropdown: true }), focusTrigger(column))}
        >
          {t('reset')}
        </Button>
        <Button size="small" type="primary" onClick={apply}>
          {t('ok')}
        </Button>
      </Space>
    </div>
  );
}
/** The name filter: a search box focused when it opens; Enter applies, Escape closes. */
function NameFilter({ label, p, t }: { label: string; p: FilterDropdownProps; t: (k: Key) => string }) {
  const box = useRef<HTMLDivElement>(null);
  useFocusWhenOpen(p.visible, () => box.current?.querySelector<HTMLInputElement>('input'));
  return (
    <div
      ref={box}
      style={{ padding: 8 }}
      onKeyDown={(e) => {
        e.stopPropagation();
        if (e.key === 'Escape') (p.close(), focusTrigger('name'));
      }}
    >
      <Input.Search
        aria-label={t('name')}
        placeholder={t('name')}
        value={p.selectedKeys[0] as string}
        onChange={(e) => p.setSelectedKeys(e.target.value ? [e.target.value] : [])}
        onSearch={() => (p.confirm(), focusTrigger('name'))}
        enterButton={<Button aria-label={label} icon={<SearchOutlined aria-hidden />} />}
        allowClear
      />
    </div>
  );
}
const HYPERVISORS = ['KVM', 'VMWARE', 'XEN', 'HYPERV'];

export function ImagesPage({ me, onAuthFailed }: { me: Me; onAuthFailed: () => void }) {
  const t = useT();
  const { message } = AntApp.useApp();
  const [st, setSt] = useState<State>(() => readUrl(me));
  // the early answers of index.html, taken once at the first render
  const earlyRef = useRef<Early | undefined | null>(null);
  if (earlyRef.current === null) earlyRef.current = takeFirst(st);
  const [rows, setRows] = useState<Image[]>(() => (earlyRef.current?.ready ? (markData(), earlyRef.current.ready.list.items) : []));
  // Progressive first render: the page's first rows come in the first render (what a screen shows above the
  // fold), the rest of the page in the render after it has been painted (once; a page change renders all at once)
  const [allShown, setAllShown] = useState(false);
  useEffect(() => {
    if (allShown || !rows.length) return;
    let later: ReturnType<typeof setTimeout> | undefined;
    const frame = requestAnimationFrame(() => (later = setTimeout(() => setAllShown(true))));
    return () => {
      cancelAnimationFrame(frame);
      clearTimeout(later);
    };
  }, [rows, allShown]);
  const shownRows = useMemo(() => (allShown ? rows : rows.slice(0, FIRST_ROWS)), [rows, allShown]);
  const [total, setTotal] = useState(() => earlyRef.current?.ready?.list.total ?? 0);
  const [counts, setCounts] = useState<Counts | undefined>(() => earlyRef.current?.ready?.counts);
  const [zones, setZones] = useState<Zone[]>(() => firstZones ?? []);
  const [loading, setLoading] = useState(false);
  const [mode, setMode] = useState<'live' | 'polling' | undefined>();
  const [dialog, setDialog] = useState<{ type: 'create' | 'createIso' | 'edit' | 'delete' | 'launch'; image?: Image }>();
  const seq = useRef(0);
  const prefetched = useRef(false);
  const prefetchDialogs = () => {
    if (prefetched.current) return;
    prefetched.current = true;
    setTimeout(() => void loadDialogs(), 3000); // after the first screen has settled
  };

  const filters = useMemo(
    () => ({
      tags: st.tags.length ? st.tags : undefined,
      kind: st.kind,
      q: st.q,
      name: st.name,
      osCategory: st.osCategory as Image['osCategory'] | undefined,
      hypervisor: st.hypervisor as Image['hypervisor'] | undefined,
    }),
    [st],
  );
  const load = useCallback(async () => {
    const n = ++seq.current;
    const early = earlyRef.current;
    earlyRef.current = undefined;
    if (early?.ready) return prefetchDialogs(); // the first render showed them
    setLoading(true);
    const [list, c]: [ListRes, { data?: Counts }] = early
      ? await Promise.all([early.list, early.counts])
      : await Promise.all([
          api.GET('/images', { params: { query: { ...filters, view: st.view, page: st.page, pageSize: st.pageSize, sort: st.sort, order: st.order } } }),
          api.GET('/images/counts', { params: { query: filters } }),
        ]);
    if (n !== seq.current) return;
    setLoading(false);
    if (list.response.status === 401) return onAuthFailed();
    if (list.data) {
      markData();
      setRows(list.data.items);
      setTotal(list.data.total);
    } else message.error(errorText(list.error));
    if (c.data) setCounts(c.data);
    prefetchDialogs();
  }, [filters, st.view, st.page, st.pageSize, st.sort, st.order, onAuthFailed, message]);

  useEffect(() => {
    writeUrl(st);
    void load();
  }, [st, load]);
  // the first rows are in the DOM (bench:console measures navigation start -> this mark)
  useEffect(() => {
    if (rows.length && !performance.getEntriesByName('hcm:rows').length) performance.mark('hcm:rows');
  }, [rows]);
  useEffect(() => {
    if (firstZones) return void (firstZones = undefined); // index.html's answer, shown by the first render
    void api.GET('/zones', { params: { query: { pageSize: 200 } } }).then((r) => r.data && setZones(r.data.items));
  }, []);

  // live progress: the event stream when the service has one, else poll the busy images every second
  const loadRef = useRef(load);
  loadRef.current = load;
  const rowsRef = useRef(rows);
  rowsRef.current = rows;
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const soon = () => {
      if (!timer) timer = setTimeout(() => ((timer = undefined), void loadRef.current()), 300);
    };
    let poll: ReturnType<typeof setInterval> | undefined;
    const stop = watchEvents(
      () => soon(),
      () => {
        setMode('polling');
        poll = setInterval(async () => {
          const busy = rowsRef.current.filter((r) => BUSY_PHASES.includes(r.phase));
          if (!busy.length) return;
          const fresh = await Promise.all(busy.map((b) => api.GET('/images/{id}', { params: { path: { id: b.id } } })));
          const byId = new Map(fresh.filter((f) => f.data).map((f) => [f.data!.id, f.data!]));
          setRows((cur) => cur.map((r) => byId.get(r.id) ?? r));
          if ([...byId.values()].some((f) => !BUSY_PHASES.includes(f.phase))) soon();
        }, 1000);
      },
      () => setMode('live'),
    );
    return () => {
      stop();
      if (poll) clearInterval(poll);
      if (timer) clearTimeout(timer);
    };
  }, []);

  const set = (p: Partial<State>) => setSt((s) => ({ ...s, page: 1, ...p }));
  // the columns and the table are memoised: a state change elsewhere on the page (the live badge, a dialog)
  // does not render the table's rows again
  const act = useCallback(
    async (img: Image, what: 'enable' | 'disable' | 'retry') => {
      const r =
        what === 'retry'
          ? await api.POST('/images/{id}/retry', { params: { path: { id: img.id } } })
          : what === 'enable'
            ? await api.POST('/images/{id}/enable', { params: { path: { id: img.id } } })
            : await api.POST('/images/{id}/disable', { params: { path: { id: img.id } }, body: {} });
      if (r.error) message.error(errorText(r.error));
      void loadRef.current();
    },
    [message],
  );

  const columns = useMemo((): ColumnsType<Image> => {
    const zoneName = (id: string) => zones.find((z) => z.id === id)?.name ?? id.slice(0, 8);
    return [
      {
        title: t('name'),
        dataIndex: 'name',
        key: 'name',
        sorter: true,
        sortOrder: st.sort === 'name' ? (st.order === 'desc' ? 'descend' : 'ascend') : null,
        filteredValue: st.name ? [st.name] : null,
        filterIcon: (f) => <FilterTrigger column="name" label={t('filterBy', { col: t('name') })} filtered={f} />,
        filterDropdown: (p) => <NameFilter label={t('filterBy', { col: t('name') })} p={p} t={t} />,
        render: (v: string, r) => (
          <SpaceItems className={SPACE_VERTICAL}>
            {[
              <span key="n" className={TEXT}>
                <strong>{v}</strong>
              </span>,
              r.tags.length > 0 && (
                <span key="t">
                  {r.tags.map((x) => (
                    <span key={x} className={TAG}>
                      {x}
                    </span>
                  ))}
                </span>
              ),
            ]}
          </SpaceItems>
        ),
      },
      {
        title: t('os'),
        key: 'osCategory',
        filteredValue: st.osCategory ? [st.osCategory] : null,
        filterIcon: (f) => <FilterTrigger column="osCategory" label={t('filterBy', { col: t('os') })} filtered={f} />,
        filterDropdown: (p) => <ChoiceFilter column="osCategory" label={t('filterBy', { col: t('os') })} values={OS_CATEGORIES} p={p} t={t} />,
        render: (_, r) => `${r.osCategory}${r.osName ? ` ${r.osName}` : ''}${r.osVersion ? ` ${r.osVersion}` : ''} · ${r.osBits}`,
      },
      {
        title: t('hypervisor'),
        dataIndex: 'hypervisor',
        key: 'hypervisor',
        filteredValue: st.hypervisor ? [st.hypervisor] : null,
        filterIcon: (f) => <FilterTrigger column="hypervisor" label={t('filterBy', { col: t('hypervisor') })} filtered={f} />,
        filterDropdown: (p) => <ChoiceFilter column="hypervisor" label={t('filterBy', { col: t('hypervisor') })} values={HYPERVISORS} p={p} t={t} />,
      },
      { title: t('format'), dataIndex: 'format', key: 'format' },
      {
        title: t('kind'),
        key: 'kind',
        render: (_, r) => (r.kind === 'ISO' ? `ISO · ${r.isoUsage === 'TOOL' ? t('usageTool') : t('usageOs')}` : t('typeImage')),
      },
      {
        title: t('status'),
        key: 'status',
        width: 190,
        render: (_, r) => {
          const busy = BUSY_PHASES.includes(r.phase);
          // the reason (or phase) shows on hover and focus: TipLayer around the table reads data-tip
          return (
            <SpaceItems className={SPACE_VERTICAL} data-testid={`status-${r.name}`}>
              {[
                <span
                  key="s"
                  className={tagClass(r.status === 'ACTIVE' ? 'green' : r.phase === 'FAILED' ? 'red' : 'default')}
                  tabIndex={0}
                  data-phase={r.phase}
                  data-tip={r.statusReason ? `${t('reason')}: ${r.statusReason}` : `${t('phase')}: ${r.phase}`}
                >
                  {r.status} · {r.phase}
                </span>,
                busy && r.phase !== 'QUEUED' && r.progress && (
                  <span key="p" style={{ width: 130, display: 'inline-block' }}>
                    <Progress size="small" percent={Math.floor(r.progress.percent ?? 0)} />
                    <span className={TEXT_SECONDARY} style={{ fontSize: 12 }}>
                      {formatBytes(r.progress.bytesDone)}
                      {r.progress.bytesPerSecond ? ` · ${formatBytes(r.progress.bytesPerSecond)}/s` : ''}
                    </span>
                  </span>
                ),
                r.phase === 'FAILED' && r.statusReason && (
                  <span key="f" className={TEXT_DANGER} style={{ fontSize: 12, maxWidth: 220 }} data-testid="failure-reason">
                    {r.statusReason}
                  </span>
                ),
              ]}
            </SpaceItems>
          );
        },
      },
      {
        title: t('scope'),
        dataIndex: 'scope',
        key: 'scope',
        render: (s: Image['scope']) => (
          <span className={tagClass(s === 'FEATURED' ? 'gold' : s === 'PUBLIC' ? 'blue' : 'purple')}>
            {t(s === 'FEATURED' ? 'featured' : s === 'PUBLIC' ? 'public' : 'private')}
          </span>
        ),
      },
      {
        title: t('size'),
        key: 'sizeBytes',
        sorter: true,
        sortOrder: st.sort === 'sizeBytes' ? (st.order === 'desc' ? 'descend' : 'ascend') : null,
        render: (_, r) => (
          <span>
            {formatBytes(r.sizeBytes || null)}
            {r.virtualSizeBytes ? (
              <span className={TEXT_SECONDARY}>
                {' '}
                / {t('virtualSize')} {formatBytes(r.virtualSizeBytes)}
              </span>
            ) : null}
          </span>
        ),
      },
      { title: t('owner'), key: 'owner', render: (_, r) => `${r.ownerId} (${r.departmentId})` },
      { title: t('zone'), key: 'zone', render: (_, r) => zoneName(r.zoneId) },
      {
        title: t('created'),
        dataIndex: 'createdAt',
        key: 'createdAt',
        sorter: true,
        sortOrder: st.sort === 'createdAt' ? (st.order === 'desc' ? 'descend' : 'ascend') : null,
        render: (v: string) => new Date(v).toLocaleString(),
      },
      {
        title: t('ops'),
        key: 'ops',
        fixed: 'right',
        render: (_, r) => {
          const m = may(me, r);
          return (
            <SpaceItems className={SPACE_WRAP} style={{ flexWrap: 'wrap' }}>
              {[
                m.edit && (
                  <LinkButton key="edit" onClick={() => setDialog({ type: 'edit', image: r })}>
                    {t('edit')}
                  </LinkButton>
                ),
                ((m.use && r.kind === 'IMAGE') || (m.use && r.isoUsage === 'OS')) && (
                  <LinkButton key="vm" onClick={() => setDialog({ type: 'launch', image: r })}>
                    {t('createVm')}
                  </LinkButton>
                ),
                m.enableDisable && r.phase === 'READY' && (
                  <LinkButton key="disable" onClick={() => void act(r, 'disable')}>
                    {t('disable')}
                  </LinkButton>
                ),
                m.enableDisable && r.phase === 'DISABLED' && (
                  <LinkButton key="enable" onClick={() => void act(r, 'enable')}>
                    {t('enable')}
                  </LinkButton>
                ),
                m.edit && r.phase === 'FAILED' && (
                  <LinkButton key="retry" onClick={() => void act(r, 'retry')}>
                    {t('retry')}
                  </LinkButton>
                ),
                m.delete && (
                  <LinkButton key="delete" danger onClick={() => setDialog({ type: 'delete', image: r })}>
                    {t('delete')}
                  </LinkButton>
                ),
              ]}
            </SpaceItems>
          );
        },
      },
    ];
  }, [t, st, zones, me, act]);

  const onTable = useCallback((p: TablePaginationConfig, f: Record<string, FilterValue | null>, s: SorterResult<Image> | SorterResult<Image>[]) => {
    const so = Array.isArray(s) ? s[0] : s;
    const sortKey = so?.order ? ((so.columnKey as State['sort']) ?? undefined) : undefined;
    setSt((cur) => ({
      ...cur,
      page: p.current ?? 1,
      pageSize: p.pageSize ?? 20,
      sort: sortKey,
      order: sortKey ? (so.order === 'descend' ? 'desc' : 'asc') : undefined,
      name: (f.name?.[0] as string | undefined) || undefined,
      osCategory: (f.osCategory?.[0] as string | undefined) || undefined,
      hypervisor: (f.hypervisor?.[0] as string | undefined) || undefined,
    }));
  }, []);
  const table = useMemo(
    () => (
      <TipLayer watch={shownRows}>
        <Table<Image>
          rowKey="id"
          size="middle"
          loading={loading}
          columns={columns}
          dataSource={shownRows}
          scroll={{ x: 1200 }}
          onChange={onTable}
          pagination={{ current: st.page, pageSize: st.pageSize, total, showSizeChanger: true, showQuickJumper: true, showTotal: (n) => t('total', { n }) }}
        />
      </TipLayer>
    ),
    [loading, columns, shownRows, onTable, st.page, st.pageSize, total, t],
  );

  const views: View[] = ['all', 'featured', 'public', 'private'];
  // the tabs and the toolbar (two Selects, the search box) are memoised too: the live badge appearing, or a dialog
  // opening, does not render them again
  const toolbar = useMemo(
    () => (
      <>
        <Tabs
          activeKey={st.view}
          onChange={(k) => set({ view: k as View })}
          items={views.map((v) => ({ key: v, label: <span data-testid={`tab-${v}`}>{`${t(v)} (${counts ? counts[v] : '…'})`}</span> }))}
        />
        <Space wrap style={{ marginBottom: 12 }}>
          <Button type="primary" onClick={() => setDialog({ type: 'create' })}>
            {t('create')}
          </Button>
          <Button onClick={() => setDialog({ type: 'createIso' })}>{t('createIso')}</Button>
          <Select
            mode="tags"
            aria-label={t('tagSearch')}
            data-testid="tag-search"
            placeholder={t('tagSearch')}
            style={{ minWidth: 200 }}
            value={st.tags}
            onChange={(v: string[]) => set({ tags: v })}
            open={false}
            suffixIcon={null}
          />
          <Select
            aria-label={t('typeFilter')}
            data-testid="type-filter"
            placeholder={t('typeFilter')}
            allowClear
            style={{ width: 120 }}
            value={st.kind}
            onChange={(v) => set({ kind: v })}
            options={[
              { value: 'IMAGE', label: t('typeImage') },
              { value: 'ISO', label: t('typeIso') },
            ]}
          />
          <Input.Search
            aria-label={t('quickSearch')}
            placeholder={t('quickSearch')}
            allowClear
            defaultValue={st.q}
            enterButton={<Button aria-label={t('search')} icon={<SearchOutlined aria-hidden />} />}
            style={{ width: 300 }}
            onSearch={(v) => set({ q: v || undefined })}
          />
          <Button onClick={() => void load()}>{t('refresh')}</Button>
        </Space>
      </>
    ),
    [st, counts, t, load],
  );
  return (
    <div>
      <Typography.Title level={4} style={{ marginTop: 0 }}>
        {t('title')}
        {mode && (
          <Badge status={mode === 'live' ? 'processing' : 'default'} text={t(mode)} style={{ marginLeft: 12, fontWeight: 'normal' }} data-testid="live-mode" />
        )}
      </Typography.Title>
      {toolbar}
      {table}
      <Suspense fallback={null}>
        {(dialog?.type === 'create' || dialog?.type === 'createIso') && (
          <CreateDialog me={me} iso={dialog.type === 'createIso'} zones={zones} onClose={(done) => (setDialog(undefined), done && void load())} />
        )}
        {dialog?.type === 'edit' && dialog.image && <EditDialog me={me} image={dialog.image} onClose={(done) => (setDialog(undefined), done && void load())} />}
        {dialog?.type === 'delete' && dialog.image && <DeleteDialog image={dialog.image} onClose={(done) => (setDialog(undefined), done && void load())} />}
        {dialog?.type === 'launch' && dialog.image && <LaunchDialog me={me} image={dialog.image} zones={zones} onClose={() => setDialog(undefined)} />}
      </Suspense>
    </div>
  );
}
