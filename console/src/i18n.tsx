import { createContext, useContext } from 'react';

const zh = {
  title: '镜像',
  crumb: '资源管理 / 区域管理 / 镜像',
  all: '所有', featured: '精选', public: '公共', private: '私有',
  create: '创建镜像', createIso: '创建ISO镜像', refresh: '刷新',
  tagSearch: '按标签搜索', typeFilter: '类型', typeImage: '镜像', typeIso: 'ISO', quickSearch: '快速搜索：名称、描述、状态',
  name: '名称', os: '操作系统', hypervisor: '虚拟化技术', format: '格式', kind: '类型', status: '状态', scope: '范围',
  size: '大小', virtualSize: '虚拟大小', owner: '所有者', zone: '区域', created: '创建时间', ops: '操作',
  edit: '编辑', delete: '删除', enable: '启用', disable: '禁用', createVm: '创建虚拟机', retry: '重试',
  description: '描述', osCategory: '操作系统类型', osBits: '系统位数', bits32: '32位', bits64: '64位', osName: '操作系统名称', osVersion: '版本',
  isoUsage: 'ISO用途', usageOs: '操作系统', usageTool: '工具', tags: '标签', source: '来源', sourceUrl: 'HTTP URL', sourceFile: '选择已有文件',
  url: 'URL', chooseFile: '选择文件', advanced: '高级设置', zoneDefault: '默认为区域的虚拟化技术',
  winVirtio: 'Windows-VIRTIO：驱动为VIRTIO的Windows镜像（推荐，性能更好）', winIde: 'Windows-IDE：驱动为IDE的Windows镜像，基于它的虚拟机最多挂载一块数据盘',
  quotaLeft: '部门配额剩余', imageCount: '镜像数', imageBytes: '镜像容量', unlimited: '不限',
  ok: '确定', cancel: '取消', save: '保存', signIn: '登录', signOut: '退出', pasteToken: '粘贴令牌', devUser: '开发用户',
  token: '令牌', role: '角色', userId: '用户ID', department: '部门', devOnly: '开发用户登录仅在嵌入式默认配置（生成的开发密钥）中可用。',
  tokenInvalid: '令牌无效', share: '共享地址', shareHint: '请先把文件复制到共享目录（如 Windows 资源管理器中输入共享地址），再在此选择。',
  folderUp: '上一级', searchFiles: '按名称搜索文件', selected: '已选择',
  immutableWarn: '注意：镜像的URL、虚拟化技术和格式创建后不可修改。',
  deleteTitle: '删除镜像', deleteVms: '以下虚拟机由此镜像创建或挂载了此ISO，删除后它们不受影响：', noVms: '没有虚拟机使用此镜像。', confirmDelete: '确认删除',
  vmName: '虚拟机', relation: '关系', createdFrom: '由此创建', isoMounted: '挂载ISO',
  launchTitle: '创建虚拟机：启动检查', vmCount: '虚拟机数量', dataDisks: '每台数据盘数', check: '检查',
  launchNote: '真正的创建由计算侧调用启动接口完成（仅服务令牌可调用）；这里根据记录和部门配额预先检查。',
  usable: '可用于创建虚拟机', notActive: '镜像不是 ACTIVE 状态，不能创建虚拟机', toolIso: '工具类ISO只能挂载，不能用于创建虚拟机',
  notUsable: '该所有者不能使用此镜像（他人的私有镜像）', tooManyDisks: 'Windows-IDE 镜像的虚拟机最多挂载一块数据盘', quotaShort: '部门虚拟机配额不足',
  quotaUnknown: '无法读取该部门配额（无权限），配额由计算侧检查', phase: '阶段', rate: '速率', reason: '原因',
  disableReason: '禁用原因', total: '共 {n} 条', lang: 'English', failed: '导入失败', created_ok: '已创建', saved: '已保存', deleted: '已删除',
  live: '实时', polling: '轮询', filterBy: '筛选：{col}', reset: '重置', search: '搜索',
};
export type Key = keyof typeof zh;
const en: Record<Key, string> = {
  title: 'Images', crumb: 'Resources / Zones / Images',
  all: 'All', featured: 'Featured', public: 'Public', private: 'Private',
  create: 'Create image', createIso: 'Create ISO', refresh: 'Refresh',
  tagSearch: 'Search by tags', typeFilter: 'Type', typeImage: 'Image', typeIso: 'ISO', quickSearch: 'Quick search: name, description, status',
  name: 'Name', os: 'OS', hypervisor: 'Virtualization', format: 'Format', kind: 'Kind', status: 'Status', scope: 'Scope',
  size: 'Size', virtualSize: 'Virtual size', owner: 'Owner', zone: 'Zone', created: 'Created', ops: 'Operations',
  edit: 'Edit', delete: 'Delete', enable: 'Enable', disable: 'Disable', createVm: 'Create VM', retry: 'Retry',
  description: 'Description', osCategory: 'OS category', osBits: 'Bits', bits32: '32-bit', bits64: '64-bit', osName: 'OS name', osVersion: 'Version',
  isoUsage: 'ISO usage', usageOs: 'Operating system', usageTool: 'Tools', tags: 'Tags', source: 'Source', sourceUrl: 'HTTP URL', sourceFile: 'Pick an existing file',
  url: 'URL', chooseFile: 'Choose file', advanced: 'Advanced settings', zoneDefault: "Defaults to the zone's virtualization",
  winVirtio: 'Windows-VIRTIO: a Windows image with VIRTIO drivers (recommended, faster)', winIde: 'Windows-IDE: a Windows image with IDE drivers; its VMs mount at most one data disk',
  quotaLeft: 'Department quota left', imageCount: 'Images', imageBytes: 'Image bytes', unlimited: 'unlimited',
  ok: 'OK', cancel: 'Cancel', save: 'Save', signIn: 'Sign in', signOut: 'Sign out', pasteToken: 'Paste a token', devUser: 'Development user',
  token: 'Token', role: 'Role', userId: 'User id', department: 'Department', devOnly: 'Development sign-in exists only in the embedded default (a generated development secret).',
  tokenInvalid: 'Invalid token', share: 'Share address', shareHint: 'Copy the file onto the share first (e.g. type the share address in Windows Explorer), then pick it here.',
  folderUp: 'Up', searchFiles: 'Search files by name', selected: 'Selected',
  immutableWarn: "Note: an image's URL, virtualization technology and format cannot change after it is created.",
  deleteTitle: 'Delete image', deleteVms: 'These VMs were created from this image or mount this ISO; they are not touched:', noVms: 'No VM uses this image.', confirmDelete: 'Delete',
  vmName: 'VM', relation: 'Relation', createdFrom: 'created from', isoMounted: 'ISO mounted',
  launchTitle: 'Create VM: launch check', vmCount: 'VM count', dataDisks: 'Data disks per VM', check: 'Check',
  launchNote: "The real launch is the compute side's call (a service token only); this is a pre-check from the record and the department quota.",
  usable: 'Usable to create VMs', notActive: 'The image is not ACTIVE: no VM can be created from it', toolIso: 'A tool ISO can only be mounted, never create a VM',
  notUsable: "The owner may not use this image (another user's private one)", tooManyDisks: 'A VM from a Windows-IDE image mounts at most one data disk', quotaShort: 'Not enough VM quota in the department',
  quotaUnknown: "The department's quota cannot be read (no permission); the compute side checks it", phase: 'Phase', rate: 'Rate', reason: 'Reason',
  disableReason: 'Reason', total: '{n} in total', lang: '中文', failed: 'Import failed', created_ok: 'Created', saved: 'Saved', deleted: 'Deleted',
  live: 'live', polling: 'polling', filterBy: 'Filter: {col}', reset: 'Reset', search: 'Search',
};
export const DICTS = { zh, en };
export type Lang = keyof typeof DICTS;
export const LangContext = createContext<Lang>('zh');
export function useT() {
  const lang = useContext(LangContext);
  return (k: Key, vars?: Record<string, string | number>) => {
    let s = DICTS[lang][k];
    for (const [n, v] of Object.entries(vars ?? {})) s = s.replace(`{${n}}`, String(v));
    return s;
  };
}
