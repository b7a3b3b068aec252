/**
 * antd's prebuilt stylesheet (antd/dist/antd.css, for its zero-runtime mode) styles every component: ~1 MB
 * that the browser parses before the first paint. This Vite plugin drops the top-level rules of components
 * the console never renders (date pickers, uploads, steps, ...): a rule goes only when every selector of it
 * names one of them, so a rule shared with a used component stays. At-rules (@media, @keyframes) stay.
 */
export const UNUSED = [
  'picker',
  'upload',
  'steps',
  'mentions',
  'color-picker',
  'cascader',
  'image',
  'drawer',
  'tour',
  'slider',
  'switch',
  'transfer',
  'splitter',
  'timeline',
  'carousel',
  'segmented',
  'float-btn',
  'tree',
  'tree-select',
  'qrcode',
  'rate',
  'statistic',
  'result',
  'anchor',
  'affix',
  'avatar',
  'breadcrumb',
  'calendar',
  'watermark',
  'back-top',
  'skeleton',
  'masonry',
];
const unused = new RegExp(`\\.ant-(?:${UNUSED.join('|')})(?![a-z])`);

/** Splits a stylesheet into its top-level blocks (selector or at-rule prelude + body), keeping comments out. */
function blocks(css) {
  const out = [];
  let depth = 0;
  let start = 0;
  let quote = '';
  for (let i = 0; i < css.length; i++) {
    const ch = css[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = '';
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === '{') depth++;
    else if (ch === '}' && --depth === 0) {
      out.push(css.slice(start, i + 1));
      start = i + 1;
    }
  }
  if (start < css.length) out.push(css.slice(start));
  return out;
}

export function trimAntdCss(css) {
  return blocks(css)
    .filter((b) => {
      const prelude = b.slice(0, b.indexOf('{')).trim();
      if (!prelude || prelude.startsWith('@')) return true;
      return !prelude.split(',').every((sel) => unused.test(sel));
    })
    .join('');
}

export function trimAntdCssPlugin() {
  return {
    name: 'hcm-trim-antd-css',
    enforce: 'pre',
    transform(code, id) {
      if (!/[\\/]antd[\\/]dist[\\/]antd\.css$/.test(id.split('?')[0])) return null;
      return { code: trimAntdCss(code), map: null };
    },
  };
}
