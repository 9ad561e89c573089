import type { EntityClass, EntityData, FilterQuery, FromEntityType, RequiredEntityData } from '@mikro-orm/core';
import type { SqlEntityManager } from '@mikro-orm/postgresql';
import { BadUserInputError } from './errors.js';
import { MAX_PAGE_SIZE } from './pagination.js';

export type SortOrder = 'asc' | 'desc';

export interface PageOptions {
  skip?: number;
  limit?: number;
}

export interface ListOptions<T> extends PageOptions {
  sortBy?: keyof T & string;
  sortOrder?: SortOrder;
}

/**
 * Generic CRUD for an entity with an integer `id` (the original design note's `QueryHelper`).
 * Sorting is limited to the fields named at construction, so a client-chosen sort can never reach
 * an unindexed or private column. Paging is bounded: `limit` 1..100, `skip` >= 0.
 */
export class QueryHelper<T extends { id: number }> {
  constructor(
    readonly entity: EntityClass<T>,
    readonly sortableFields: ReadonlyArray<keyof T & string>,
  ) {}

  getById(em: SqlEntityManager, id: number): Promise<T | null> {
    return em.findOne(this.entity, { id } as FilterQuery<T>);
  }

  /** All rows by id, one page. */
  getAll(em: SqlEntityManager, page: PageOptions = {}): Promise<T[]> {
    return this.getAllByFilter(em, {}, page);
  }

  getByFilter(em: SqlEntityManager, filter: FilterQuery<T>): Promise<T | null> {
    return em.findOne(this.entity, filter);
  }

  async getAllByFilter(em: SqlEntityManager, filter: FilterQuery<T>, options: ListOptions<T> = {}): Promise<T[]> {
    const { offset, limit } = this.page(options);
    const sortBy = options.sortBy ?? 'id';
    if (sortBy !== 'id' && !this.sortableFields.includes(sortBy)) {
      throw new BadUserInputError(
        `cannot sort by "${sortBy}"; sortable fields: ${['id', ...this.sortableFields].join(', ')}`,
      );
    }
    const order = options.sortOrder ?? 'asc';
    if (order !== 'asc' && order !== 'desc') throw new BadUserInputError('sortOrder must be "asc" or "desc"');
    // `id` breaks ties so pages never overlap or skip rows.
    const orderBy = sortBy === 'id' ? { id: order } : { [sortBy]: order, id: order };
    return em.find(this.entity, filter, { offset, limit, orderBy: orderBy as never });
  }

  async create(em: SqlEntityManager, data: RequiredEntityData<T>): Promise<T> {
    const entity = em.create(this.entity, data);
    await em.flush();
    return entity;
  }

  /** Null when no row has that id. */
  async update(em: SqlEntityManager, id: number, data: EntityData<FromEntityType<T>>): Promise<T | null> {
    const entity = await this.getById(em, id);
    if (!entity) return null;
    em.assign(entity, data);
    await em.flush();
    return entity;
  }

  /** True when a row was deleted. */
  async delete(em: SqlEntityManager, id: number): Promise<boolean> {
    const affected = await em.nativeDelete(this.entity, { id } as FilterQuery<T>);
    return affected > 0;
  }

  count(em: SqlEntityManager, filter: FilterQuery<T> = {}): Promise<number> {
    return em.count(this.entity, filter);
  }

  private page(options: PageOptions): { offset: number; limit: number } {
    const offset = options.skip ?? 0;
    const limit = options.limit ?? MAX_PAGE_SIZE;
    if (!Number.isInteger(offset) || offset < 0) throw new BadUserInputError('skip must be a non-negative integer');
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new BadUserInputError(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}`);
    }
    return { offset, limit };
  }
}
