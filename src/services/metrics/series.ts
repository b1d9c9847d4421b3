// Counters and histograms for hot paths. prom-client's own label children hash their label object on
// every inc/observe (an object and a string per call); these keep plain numbers in a series that the
// caller looks up once and keeps, and build the labelled values only when Prometheus scrapes. They
// are registered in a prom-client Registry, which writes them out with everything else.
import type { Metric, Registry } from "prom-client";

type Labels = Record<string, string>;

/** What a prom-client Registry reads from a metric when it writes the exposition (its get()). */
interface Collected {
  name: string;
  help: string;
  type: "counter" | "histogram";
  aggregator: "sum";
  values: { metricName?: string; labels: Record<string, string | number>; value: number }[];
}

function labelsOf(names: readonly string[], values: readonly string[]): Labels {
  if (values.length !== names.length) throw new Error(`expected ${names.length} label values, got ${values.length}`);
  const labels: Labels = {};
  names.forEach((name, i) => (labels[name] = values[i]!));
  return labels;
}

/** Families share the way children are made and found: by their label values, once. */
abstract class Family<Series> {
  protected readonly children = new Map<string, { labels: Labels; series: Series }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  /** The series of these label values (in labelNames order); keep it rather than asking per event. */
  labels(...values: string[]): Series {
    const key = values.join("\u0000");
    let child = this.children.get(key);
    if (!child) {
      child = { labels: labelsOf(this.labelNames, values), series: this.make() };
      this.children.set(key, child);
    }
    return child.series;
  }

  register(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }

  protected abstract make(): Series;
}

export class CounterSeries {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class FastCounter extends Family<CounterSeries> {
  readonly type = "counter";
  readonly aggregator = "sum";

  protected make(): CounterSeries {
    return new CounterSeries();
  }

  get(): Collected {
    const values = [...this.children.values()].map(({ labels, series }) => ({ labels, value: series.value }));
    return { name: this.name, help: this.help, type: "counter", aggregator: "sum", values };
  }
}

export class HistogramSeries {
  /** Observations per bucket (not cumulative), the last one past every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

export class FastHistogram extends Family<HistogramSeries> {
  readonly type = "histogram";
  readonly aggregator = "sum";
  private readonly bounds: readonly number[];

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, labelNames);
    this.bounds = [...buckets].sort((a, b) => a - b);
  }

  protected make(): HistogramSeries {
    return new HistogramSeries(this.bounds);
  }

  get(): Collected {
    const values: Collected["values"] = [];
    for (const { labels, series } of this.children.values()) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += series.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: bound }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: "+Inf" }, value: series.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: series.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: series.count });
    }
    return { name: this.name, help: this.help, type: "histogram", aggregator: "sum", values };
  }
}
