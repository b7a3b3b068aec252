import { Alert, App as AntApp, Button, Collapse, Descriptions, Form, Input, InputNumber, List, Modal, Radio, Select, Space, Table, Typography } from 'antd';
import { useEffect, useState } from 'react';
import {
  api,
  errorText,
  type FileEntry,
  type FileSource,
  fieldErrors,
  formatBytes,
  type Image,
  type ImageVm,
  type Me,
  may,
  type Quota,
  type Schemas,
  type Zone,
} from './api/client';
import { OS_CATEGORIES } from './constants';
import { useT } from './i18n';

const FORMATS: Schemas['ImageFormat'][] = ['qcow2', 'raw', 'vmdk', 'vhd', 'vhdx'];
const HYPERVISORS: Schemas['Hypervisor'][] = ['KVM', 'VMWARE', 'XEN', 'HYPERV'];

/** The form field a service error names (details.fields[].field, e.g. `source.url`). */
const FIELD_OF: Record<string, string> = { 'source.url': 'url', 'source.path': 'path', 'source.fileSource': 'path', source: 'url' };

function useQuota(dept: string) {
  const [q, setQ] = useState<Quota | null>();
  useEffect(() => {
    void api.GET('/quotas/{departmentId}', { params: { path: { departmentId: dept } } }).then((r) => setQ(r.data ?? null));
  }, [dept]);
  return q;
}

function QuotaLine({ quota }: { quota: Quota | null | undefined }) {
  const t = useT();
  if (!quota) return null;
  const left = (res: string, bytes = false) => {
    const r = quota.resources.find((x) => x.resource === res);
    if (!r) return '-';
    return r.unlimited ? t('unlimited') : bytes ? formatBytes(r.remaining) : String(r.remaining);
  };
  return (
    <Alert
      type="info"
      data-testid="quota-left"
      style={{ marginBottom: 12 }}
      title={`${t('quotaLeft')} (${quota.departmentId}): ${t('imageCount')} ${left('IMAGE_COUNT')} · ${t('imageBytes')} ${left('IMAGE_BYTES', true)}`}
    />
  );
}

function FilePicker({ onPick, onClose }: { onPick: (source: string, e: FileEntry) => void; onClose: () => void }) {
  const t = useT();
  const [sources, setSources] = useState<FileSource[]>([]);
  const [source, setSource] = useState<string>();
  const [path, setPath] = useState('');
  const [name, setName] = useState<string>();
  const [page, setPage] = useState(1);
  const [items, setItems] = useState<FileEntry[]>([]);
  const [total, setTotal] = useState(0);
  const [error, setError] = useState<string>();
  useEffect(() => {
    void api.GET('/file-sources').then((r) => {
      if (!r.data) return setError(errorText(r.error));
      setSources(r.data.items);
      setSource(r.data.items.find((s) => s.default)?.name ?? r.data.items[0]?.name);
    });
  }, []);
  useEffect(() => {
    if (!source) return;
    void api
      .GET('/file-sources/{source}/entries', { params: { path: { source }, query: { path: path || undefined, name: name || undefined, page, pageSize: 50 } } })
      .then((r) => {
        if (!r.data) return setError(errorText(r.error));
        setError(undefined);
        setItems(r.data.items);
        setTotal(r.data.total);
      });
  }, [source, path, name, page]);
  const current = sources.find((s) => s.name === source);
  return (
    <Modal open title={t('sourceFile')} onCancel={onClose} footer={null} width={760}>
      {current && (
        <Alert
          type="info"
          style={{ marginBottom: 12 }}
          title={
            <span>
              {t('share')}:{' '}
              <Typography.Text code copyable data-testid="share-location">
                {current.location || current.name}
              </Typography.Text>
            </span>
          }
          description={t('shareHint')}
        />
      )}
      {error && <Alert type="error" title={error} style={{ marginBottom: 12 }} />}
      <Space style={{ marginBottom: 12 }} wrap>
        <Select
          style={{ width: 160 }}
          value={source}
          onChange={(v) => (setSource(v), setPath(''), setPage(1))}
          options={sources.map((s) => ({ value: s.name, label: s.name }))}
          aria-label="source"
        />
        <Button disabled={!path} onClick={() => (setPath(path.split('/').slice(0, -1).join('/')), setPage(1))}>
          {t('folderUp')}
        </Button>
        <Typography.Text code>/{path}</Typography.Text>
        <Input.Search
          placeholder={t('searchFiles')}
          aria-label={t('searchFiles')}
          allowClear
          onSearch={(v) => (setName(v || undefined), setPage(1))}
          style={{ width: 220 }}
        />
      </Space>
      <Table<FileEntry>
        rowKey="path"
        size="small"
        dataSource={items}
        pagination={{ current: page, pageSize: 50, total, onChange: setPage }}
        columns={[
          {
            title: t('name'),
            dataIndex: 'name',
            render: (v: string, e) =>
              e.type === 'DIR' ? (
                <Button type="link" size="small" onClick={() => (setPath(e.path), setPage(1))}>
                  📁 {v}
                </Button>
              ) : (
                <Button type="link" size="small" onClick={() => onPick(source!, e)}>
                  {v}
                </Button>
              ),
          },
          { title: t('size'), dataIndex: 'size', render: (v: number, e) => (e.type === 'DIR' ? '-' : formatBytes(v)) },
          { title: t('created'), dataIndex: 'modifiedAt', render: (v: string) => new Date(v).toLocaleString() },
        ]}
      />
    </Modal>
  );
}

interface CreateForm {
  scope: Schemas['Scope'];
  name: string;
  description?: string;
  osCategory: Schemas['OsCategory'];
  osBits: 32 | 64;
  isoUsage?: Schemas['IsoUsage'];
  tags?: string[];
  zoneId: string;
  sourceType: 'URL' | 'FILE';
  url?: string;
  path?: string;
  hypervisor?: Schemas['Hypervisor'];
  format?: Schemas['ImageFormat'];
}

export function CreateDialog({ me, iso, zones, onClose }: { me: Me; iso: boolean; zones: Zone[]; onClose: (done: boolean) => void }) {
  const t = useT();
  const { message } = AntApp.useApp();
  const [form] = Form.useForm<CreateForm>();
  const [picker, setPicker] = useState(false);
  const [picked, setPicked] = useState<{ source: string; entry: FileEntry }>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const quota = useQuota(me.dept);
  const sourceType = Form.useWatch('sourceType', form);
  const osCategory = Form.useWatch('osCategory', form);
  const zoneId = Form.useWatch('zoneId', form);
  const zone = zones.find((z) => z.id === zoneId);
  const submit = async (v: CreateForm) => {
    setBusy(true);
    setError(undefined);
    const body: Schemas['CreateImageDto'] = {
      kind: iso ? 'ISO' : 'IMAGE',
      scope: v.scope,
      name: v.name,
      description: v.description || undefined,
      osCategory: v.osCategory,
      osBits: v.osBits,
      isoUsage: iso ? v.isoUsage : undefined,
      tags: v.tags?.length ? v.tags : undefined,
      zoneId: v.zoneId,
      hypervisor: v.hypervisor,
      format: iso ? undefined : v.format,
      source: v.sourceType === 'URL' ? { type: 'URL', url: v.url } : { type: 'FILE', fileSource: picked?.source, path: picked?.entry.path },
    };
    const r = await api.POST('/images', { body });
    setBusy(false);
    if (r.data) {
      message.success(t('created_ok'));
      return onClose(true);
    }
    const fields = fieldErrors(r.error);
    const known = new Set(['scope', 'name', 'description', 'osCategory', 'osBits', 'isoUsage', 'tags', 'zoneId', 'url', 'path', 'hypervisor', 'format']);
    const mapped = fields.map((f) => ({ name: FIELD_OF[f.field] ?? f.field.split('.')[0], errors: f.messages }));
    const onForm = mapped.filter((f) => known.has(f.name));
    if (onForm.length) form.setFields(onForm.map((f) => ({ name: f.name as keyof CreateForm, errors: f.errors })));
    const b = r.error as { code?: string; details?: { reason?: string } } | undefined;
    if (b?.code === 'URL_NOT_ALLOWED') form.setFields([{ name: 'url', errors: [`${errorText(r.error)}${b.details?.reason ? ` (${b.details.reason})` : ''}`] }]);
    else if (b?.code === 'FILE_PATH_INVALID' || b?.code === 'FILE_NOT_FOUND') form.setFields([{ name: 'path', errors: [errorText(r.error)] }]);
    else if (onForm.length < fields.length || !fields.length) setError(errorText(r.error));
  };
  return (
    <Modal
      open
      title={iso ? t('createIso') : t('create')}
      onCancel={() => onClose(false)}
      onOk={() => form.submit()}
      okText={t('ok')}
      cancelText={t('cancel')}
      confirmLoading={busy}
      width={720}
      destroyOnHidden
    >
      <QuotaLine quota={quota} />
      {error && <Alert type="error" title={error} style={{ marginBottom: 12 }} data-testid="create-error" />}
      <Form<CreateForm>
        form={form}
        layout="horizontal"
        labelCol={{ span: 6 }}
        onFinish={submit}
        initialValues={{ scope: 'PRIVATE', osBits: 64, osCategory: 'CENTOS', sourceType: 'URL', isoUsage: 'OS', zoneId: zones[0]?.id, format: 'qcow2' }}
      >
        <Form.Item name="scope" label={t('scope')}>
          <Radio.Group
            options={(me.role === 'super_admin' ? (['FEATURED', 'PUBLIC', 'PRIVATE'] as const) : (['PRIVATE'] as const)).map((s) => ({
              value: s,
              label: t(s === 'FEATURED' ? 'featured' : s === 'PUBLIC' ? 'public' : 'private'),
            }))}
          />
        </Form.Item>
        <Form.Item name="name" label={t('name')} rules={[{ required: true }, { max: 255 }]}>
          <Input />
        </Form.Item>
        <Form.Item name="description" label={t('description')}>
          <Input.TextArea rows={2} />
        </Form.Item>
        <Form.Item
          name="osCategory"
          label={t('osCategory')}
          extra={osCategory === 'WINDOWS_VIRTIO' ? t('winVirtio') : osCategory === 'WINDOWS_IDE' ? t('winIde') : `${t('winVirtio')}；${t('winIde')}`}
        >
          <Select options={OS_CATEGORIES.map((o) => ({ value: o, label: o }))} aria-label={t('osCategory')} />
        </Form.Item>
        <Form.Item name="osBits" label={t('osBits')}>
          <Radio.Group
            options={[
              { value: 64, label: t('bits64') },
              { value: 32, label: t('bits32') },
            ]}
          />
        </Form.Item>
        {iso && (
          <Form.Item name="isoUsage" label={t('isoUsage')}>
            <Radio.Group
              options={[
                { value: 'OS', label: t('usageOs') },
                { value: 'TOOL', label: t('usageTool') },
              ]}
            />
          </Form.Item>
        )}
        <Form.Item name="tags" label={t('tags')}>
          <Select mode="tags" open={false} suffixIcon={null} aria-label={t('tags')} />
        </Form.Item>
        <Form.Item name="zoneId" label={t('zone')} rules={[{ required: true }]}>
          <Select options={zones.map((z) => ({ value: z.id, label: `${z.name} (${z.hypervisor})` }))} aria-label={t('zone')} />
        </Form.Item>
        <Form.Item name="sourceType" label={t('source')}>
          <Radio.Group
            options={[
              { value: 'URL', label: t('sourceUrl') },
              { value: 'FILE', label: t('sourceFile') },
            ]}
          />
        </Form.Item>
        {sourceType !== 'FILE' ? (
          <Form.Item name="url" label={t('url')} rules={[{ required: true }]}>
            <Input placeholder="http://10.0.0.5/images/centos7.qcow2" />
          </Form.Item>
        ) : (
          <Form.Item name="path" label={t('chooseFile')} rules={[{ required: true }]}>
            <Space>
              <Button onClick={() => setPicker(true)}>{t('chooseFile')}</Button>
              {picked && (
                <Typography.Text data-testid="picked-file">
                  {t('selected')}: {picked.source}:/{picked.entry.path} ({formatBytes(picked.entry.size)})
                </Typography.Text>
              )}
            </Space>
          </Form.Item>
        )}
        <Collapse
          size="small"
          items={[
            {
              key: 'adv',
              label: t('advanced'),
              forceRender: true,
              children: (
                <>
                  <Form.Item name="hypervisor" label={t('hypervisor')} extra={`${t('zoneDefault')}${zone ? `: ${zone.hypervisor}` : ''}`}>
                    <Select allowClear placeholder={zone?.hypervisor} options={HYPERVISORS.map((h) => ({ value: h, label: h }))} aria-label={t('hypervisor')} />
                  </Form.Item>
                  {!iso && (
                    <Form.Item name="format" label={t('format')}>
                      <Select options={FORMATS.map((f) => ({ value: f, label: f }))} aria-label={t('format')} />
                    </Form.Item>
                  )}
                </>
              ),
            },
          ]}
        />
      </Form>
      {picker && (
        <FilePicker
          onClose={() => setPicker(false)}
          onPick={(source, entry) => {
            setPicked({ source, entry });
            form.setFieldValue('path', entry.path);
            form.setFields([{ name: 'path', errors: [] }]);
            if (!form.getFieldValue('name')) form.setFieldValue('name', entry.name.replace(/\.[^.]+$/, ''));
            setPicker(false);
          }}
        />
      )}
    </Modal>
  );
}

export function EditDialog({ me, image, onClose }: { me: Me; image: Image; onClose: (done: boolean) => void }) {
  const t = useT();
  const { message } = AntApp.useApp();
  const [form] = Form.useForm();
  const [error, setError] = useState<string>();
  const scopes =
    me.role === 'super_admin' || me.role === 'admin' ? ['FEATURED', 'PUBLIC', 'PRIVATE'] : image.ownerId === me.sub ? ['PUBLIC', 'PRIVATE'] : [image.scope];
  const submit = async (v: Schemas['UpdateImageDto']) => {
    const body: Schemas['UpdateImageDto'] = {
      ...v,
      scope: v.scope === image.scope ? undefined : v.scope,
      isoUsage: image.kind === 'ISO' ? v.isoUsage : undefined,
    };
    const r = await api.PATCH('/images/{id}', { params: { path: { id: image.id } }, body });
    if (r.data) {
      message.success(t('saved'));
      return onClose(true);
    }
    const fields = fieldErrors(r.error);
    if (fields.length) form.setFields(fields.map((f) => ({ name: f.field, errors: f.messages })));
    else setError(errorText(r.error));
  };
  const src = image.source.type === 'URL' ? image.source.url : image.source.type === 'FILE' ? `${image.source.fileSource}:/${image.source.path}` : 'UPLOAD';
  return (
    <Modal
      open
      title={`${t('edit')}: ${image.name}`}
      onCancel={() => onClose(false)}
      onOk={() => form.submit()}
      okText={t('save')}
      cancelText={t('cancel')}
      width={680}
      destroyOnHidden
    >
      <Alert type="warning" title={t('immutableWarn')} style={{ marginBottom: 12 }} showIcon />
      {error && <Alert type="error" title={error} style={{ marginBottom: 12 }} />}
      <Form
        form={form}
        labelCol={{ span: 6 }}
        onFinish={submit}
        initialValues={{
          name: image.name,
          description: image.description,
          osCategory: image.osCategory,
          osBits: image.osBits,
          osName: image.osName,
          osVersion: image.osVersion,
          tags: image.tags,
          scope: image.scope,
          isoUsage: image.isoUsage ?? undefined,
        }}
      >
        <Form.Item label={t('url')}>
          <Input value={src ?? ''} disabled aria-label={t('url')} data-testid="ro-url" />
        </Form.Item>
        <Form.Item label={t('hypervisor')}>
          <Input value={image.hypervisor} disabled aria-label={t('hypervisor')} data-testid="ro-hypervisor" />
        </Form.Item>
        <Form.Item label={t('format')}>
          <Input value={image.format} disabled aria-label={t('format')} data-testid="ro-format" />
        </Form.Item>
        <Form.Item name="name" label={t('name')} rules={[{ required: true }]}>
          <Input />
        </Form.Item>
        <Form.Item name="description" label={t('description')}>
          <Input.TextArea rows={2} />
        </Form.Item>
        <Form.Item name="osCategory" label={t('osCategory')}>
          <Select options={OS_CATEGORIES.map((o) => ({ value: o, label: o }))} />
        </Form.Item>
        <Form.Item name="osBits" label={t('osBits')}>
          <Radio.Group
            options={[
              { value: 64, label: t('bits64') },
              { value: 32, label: t('bits32') },
            ]}
          />
        </Form.Item>
        <Form.Item name="osName" label={t('osName')}>
          <Input />
        </Form.Item>
        <Form.Item name="osVersion" label={t('osVersion')}>
          <Input />
        </Form.Item>
        {image.kind === 'ISO' && (
          <Form.Item name="isoUsage" label={t('isoUsage')}>
            <Radio.Group
              options={[
                { value: 'OS', label: t('usageOs') },
                { value: 'TOOL', label: t('usageTool') },
              ]}
            />
          </Form.Item>
        )}
        <Form.Item name="tags" label={t('tags')}>
          <Select mode="tags" open={false} suffixIcon={null} />
        </Form.Item>
        <Form.Item name="scope" label={t('scope')}>
          <Radio.Group options={scopes.map((s) => ({ value: s, label: t(s === 'FEATURED' ? 'featured' : s === 'PUBLIC' ? 'public' : 'private') }))} />
        </Form.Item>
      </Form>
    </Modal>
  );
}

export function DeleteDialog({ image, onClose }: { image: Image; onClose: (done: boolean) => void }) {
  const t = useT();
  const { message } = AntApp.useApp();
  const [vms, setVms] = useState<{ items: ImageVm[]; total: number }>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    void api
      .GET('/images/{id}/vms', { params: { path: { id: image.id }, query: { pageSize: 100 } } })
      .then((r) => (r.data ? setVms(r.data) : setError(errorText(r.error))));
  }, [image.id]);
  const go = async () => {
    const r = await api.DELETE('/images/{id}', { params: { path: { id: image.id }, query: { confirm: true } } });
    if (r.error) return setError(errorText(r.error));
    message.success(t('deleted'));
    onClose(true);
  };
  return (
    <Modal
      open
      title={`${t('deleteTitle')}: ${image.name}`}
      onCancel={() => onClose(false)}
      onOk={go}
      okText={t('confirmDelete')}
      okButtonProps={{ danger: true, disabled: !vms }}
      cancelText={t('cancel')}
    >
      {error && <Alert type="error" title={error} style={{ marginBottom: 12 }} />}
      {vms && vms.total === 0 && <Typography.Paragraph>{t('noVms')}</Typography.Paragraph>}
      {vms && vms.total > 0 && (
        <>
          <Typography.Paragraph>{t('deleteVms')}</Typography.Paragraph>
          <List
            size="small"
            bordered
            data-testid="linked-vms"
            dataSource={vms.items}
            renderItem={(v) => (
              <List.Item>
                {v.vmName} ({v.vmId}) · {v.relation === 'CREATED_FROM' ? t('createdFrom') : t('isoMounted')} · {v.ownerId} ({v.departmentId})
              </List.Item>
            )}
          />
          {vms.total > vms.items.length && <Typography.Text type="secondary">+{vms.total - vms.items.length}</Typography.Text>}
        </>
      )}
    </Modal>
  );
}

export function LaunchDialog({ me, image, zones, onClose }: { me: Me; image: Image; zones: Zone[]; onClose: () => void }) {
  const t = useT();
  const [v, setV] = useState({ userId: me.sub, departmentId: me.dept, role: me.role as 'user' | 'admin' | 'super_admin', count: 1, disks: 0 });
  const [verdict, setVerdict] = useState<{ ok: boolean; lines: string[] }>();
  const check = async () => {
    const lines: string[] = [];
    if (image.status !== 'ACTIVE') lines.push(`${t('notActive')} (${image.phase}${image.statusReason ? `: ${image.statusReason}` : ''})`);
    if (image.kind === 'ISO' && image.isoUsage === 'TOOL') lines.push(t('toolIso'));
    if (!may({ sub: v.userId, dept: v.departmentId, role: v.role, name: v.userId }, image).use) lines.push(t('notUsable'));
    if (image.osCategory === 'WINDOWS_IDE' && v.disks > 1) lines.push(t('tooManyDisks'));
    const q = await api.GET('/quotas/{departmentId}', { params: { path: { departmentId: v.departmentId } } });
    let note: string | undefined;
    if (q.data) {
      const vm = q.data.resources.find((r) => r.resource === 'VM_COUNT');
      if (vm && !vm.unlimited && (vm.remaining ?? 0) < v.count) lines.push(`${t('quotaShort')} (${vm.remaining} < ${v.count})`);
    } else note = t('quotaUnknown');
    setVerdict({ ok: lines.length === 0, lines: lines.length ? lines : [t('usable'), ...(note ? [note] : [])] });
  };
  const zone = zones.find((z) => z.id === image.zoneId);
  return (
    <Modal open title={`${t('launchTitle')}: ${image.name}`} onCancel={onClose} footer={<Button onClick={onClose}>{t('ok')}</Button>} width={640}>
      <Alert type="info" title={t('launchNote')} style={{ marginBottom: 12 }} />
      <Descriptions
        size="small"
        column={2}
        style={{ marginBottom: 12 }}
        items={[
          { key: 'z', label: t('zone'), children: zone ? `${zone.name} (${zone.hypervisor})` : image.zoneId },
          { key: 's', label: t('status'), children: `${image.status} · ${image.phase}` },
        ]}
      />
      <Form layout="inline" style={{ rowGap: 8 }}>
        <Form.Item label={t('userId')}>
          <Input value={v.userId} onChange={(e) => setV({ ...v, userId: e.target.value })} style={{ width: 120 }} aria-label={t('userId')} />
        </Form.Item>
        <Form.Item label={t('department')}>
          <Input value={v.departmentId} onChange={(e) => setV({ ...v, departmentId: e.target.value })} style={{ width: 120 }} aria-label={t('department')} />
        </Form.Item>
        <Form.Item label={t('role')}>
          <Select
            aria-label={t('role')}
            value={v.role}
            onChange={(role) => setV({ ...v, role })}
            style={{ width: 130 }}
            options={['user', 'admin', 'super_admin'].map((r) => ({ value: r, label: r }))}
          />
        </Form.Item>
        <Form.Item label={t('vmCount')}>
          <InputNumber aria-label={t('vmCount')} min={1} max={100} value={v.count} onChange={(n) => setV({ ...v, count: n ?? 1 })} />
        </Form.Item>
        <Form.Item label={t('dataDisks')}>
          <InputNumber aria-label={t('dataDisks')} min={0} max={16} value={v.disks} onChange={(n) => setV({ ...v, disks: n ?? 0 })} />
        </Form.Item>
        <Button type="primary" onClick={check}>
          {t('check')}
        </Button>
      </Form>
      {verdict && (
        <Alert
          style={{ marginTop: 12 }}
          type={verdict.ok ? 'success' : 'error'}
          data-testid="launch-verdict"
          title={verdict.lines.map((l) => (
            <div key={l}>{l}</div>
          ))}
        />
      )}
    </Modal>
  );
}
