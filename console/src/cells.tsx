import { Tooltip } from 'antd';
import { type FocusEvent, type MouseEvent, type ReactNode, useCallback, useEffect, useState } from 'react';

/**
 * The table's cells on the first screen are plain elements with antd's own classes (the markup antd's Tag,
 * Typography.Text, Space and link Button render, zero-runtime theme `css-var-_R_0_`), not one component
 * instance each: a first load renders 20 rows of them, and the instances (hooks, contexts, wave effects, a
 * Tooltip each) were most of the table's first render. They look and behave the same: the buttons are real
 * <button>s (keyboard, accessible name = their text), the status tag takes the focus, and its reason shows in
 * antd's Tooltip on hover or focus (one Tooltip for the whole table, mounted on the first hover, see TipLayer).
 */
const CV = 'css-var-_R_0_';
export const TAG = `ant-tag ant-tag-filled ${CV}`;
export const tagClass = (color?: string) => `ant-tag ant-tag-filled${color ? ` ant-tag-${color}` : ''} ${CV}`;
export const TEXT = `ant-typography ${CV}`;
export const TEXT_SECONDARY = `ant-typography ant-typography-secondary ${CV}`;
export const TEXT_DANGER = `ant-typography ant-typography-danger ${CV}`;
export const SPACE_VERTICAL = `ant-space ant-space-vertical ${CV}`;
export const SPACE_WRAP = `ant-space ant-space-horizontal ant-space-align-center ${CV}`;
const LINK_BUTTON = `ant-btn ${CV} ant-btn-link ant-btn-color-link ant-btn-variant-link ant-btn-sm`;
const LINK_BUTTON_DANGER = `ant-btn ${CV} ant-btn-link ant-btn-dangerous ant-btn-color-dangerous ant-btn-variant-link ant-btn-sm`;

/** antd's `<Button type="link" size="small" [danger]>` as the element it renders. */
export function LinkButton({ onClick, danger, children }: { onClick: () => void; danger?: boolean; children: ReactNode }) {
  return (
    <button type="button" className={danger ? LINK_BUTTON_DANGER : LINK_BUTTON} onClick={onClick}>
      <span>{children}</span>
    </button>
  );
}

/**
 * antd's `<Space>` (inline flex, vertical or wrapping) without its per-child `ant-space-item` wrappers: the
 * children are the flex items themselves (the same layout with a third fewer elements per row).
 */
export function SpaceItems({
  className,
  style,
  children,
  ...rest
}: {
  className: string;
  style?: object;
  children: ReactNode[];
  [data: `data-${string}`]: string;
}) {
  return (
    <div className={className} style={style} {...rest}>
      {children.filter(Boolean)}
    </div>
  );
}

const TIP_ID = 'hcm-cell-tip';
/**
 * Hover or focus on an element with `data-tip` inside shows its text in antd's Tooltip, aligned on that element
 * (an invisible anchor over it), and names it by aria-describedby while shown. Event delegation on the wrapper:
 * no per-cell instance, and nothing of the Tooltip is mounted before the first hover.
 */
export function TipLayer({ children, watch }: { children: ReactNode; watch?: unknown }) {
  const [tip, setTip] = useState<{ el: HTMLElement; text: string; n: number }>();
  // when the cells change (`watch`: the rows) under a shown tip: gone with its row, or its new text, placed again
  useEffect(
    () =>
      setTip((cur) => {
        if (!cur) return cur;
        if (!cur.el.isConnected) return undefined;
        const text = cur.el.dataset.tip ?? '';
        return text === cur.text ? cur : { el: cur.el, text, n: cur.n + 1 };
      }),
    [watch],
  );
  const show = useCallback((e: MouseEvent | FocusEvent) => {
    const el = (e.target as HTMLElement).closest<HTMLElement>('[data-tip]');
    if (!el) return;
    setTip((cur) => {
      if (cur?.el === el) return cur;
      cur?.el.removeAttribute('aria-describedby');
      el.setAttribute('aria-describedby', TIP_ID);
      return { el, text: el.dataset.tip ?? '', n: (cur?.n ?? 0) + 1 };
    });
  }, []);
  const hide = useCallback((e: MouseEvent | FocusEvent) => {
    const from = (e.target as HTMLElement).closest('[data-tip]');
    const to = (e.relatedTarget as HTMLElement | null)?.closest?.('[data-tip]');
    if (!from || from === to) return;
    setTip((cur) => {
      if (cur?.el !== from) return cur;
      cur.el.removeAttribute('aria-describedby');
      return undefined;
    });
  }, []);
  const r = tip?.el.getBoundingClientRect();
  return (
    <div onMouseOver={show} onMouseOut={hide} onFocus={show} onBlur={hide}>
      {children}
      {tip && r && (
        <Tooltip key={tip.n} open title={tip.text} id={TIP_ID}>
          <span aria-hidden style={{ position: 'fixed', left: r.left, top: r.top, width: r.width, height: r.height, pointerEvents: 'none' }} />
        </Tooltip>
      )}
    </div>
  );
}
